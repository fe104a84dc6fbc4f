"""Print-ready files: label and form files put together as one PDF or one ZPL file (`shipctl labels`).

`pages` turns one label or form file into pages of the output's size, `pdf` and `zpl` assemble the documents,
`sniff` tells a file's kind by its bytes, `replace` writes the result atomically, `cache` keeps fetched files
and `printed` remembers what was put in a file. Knows nothing of the SDK or the terminal.
"""
