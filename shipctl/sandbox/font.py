"""A 5×7 bitmap font (upper case, digits, common punctuation) for drawing label text into a PNG."""

from __future__ import annotations

GLYPH_WIDTH, GLYPH_HEIGHT = 5, 7

_FONT_SRC = """
0 0E11131519110E|1 040C040404040E|2 0E11010204081F|3 1F020402011 10E|4 02060A121F0202
5 1F101E0101110E|6 0608101E11110E|7 1F010204080808|8 0E11110E11110E|9 0E11110F01020C
A 0E1111111F1111|B 1E11111E11111E|C 0E11101010110E|D 1C121111111 21C|E 1F10101E10101F
F 1F10101E101010|G 0E1110171111 0F|H 1111111F111111|I 0E04040404040E|J 07020202021 20C
K 11121418141211|L 1010101010101F|M 111B1515111111|N 11111915131111|O 0E11111111110E
P 1E11111E101010|Q 0E11111115120D|R 1E11111E141211|S 0F10100E01011E|T 1F040404040404
U 1111111111110E|V 1111111111 0A04|W 1111111515150A|X 11110A040A1111|Y 1111110A040404
Z 1F01020408101F|. 00000000000C0C|, 000000000C0408|- 0000001F000000|# 0A0A1F0A1F0A0A
/ 00010204081000|: 000C0C000C0C00|& 0C121408151 20D|' 0C040800000000|( 02040808080402
) 08040202020408|@ 0E11010D15150E|_ 0000000000001F|+ 0004041F040400|? 0E110102040004
"""


def _parse() -> dict[str, tuple[int, ...]]:
    glyphs: dict[str, tuple[int, ...]] = {" ": (0,) * GLYPH_HEIGHT}
    for entry in _FONT_SRC.replace("\n", "|").split("|"):
        entry = entry.strip()
        if not entry:
            continue
        char, hexrows = entry[0], entry[1:].replace(" ", "")
        glyphs[char] = tuple(int(hexrows[i:i + 2], 16) for i in range(0, 2 * GLYPH_HEIGHT, 2))
    return glyphs


_GLYPHS = _parse()


def glyph(char: str) -> tuple[int, ...]:
    """Seven row bitmasks (bit 4 = leftmost pixel) for `char`; unknown characters draw as `?`."""
    return _GLYPHS.get(char.upper(), _GLYPHS["?"])
