"""Word lists the rule-based hallucination injectors draw from.

Small by design: enough to inject plausible errors into captions, short VQA answers and OCR strings
without a model. The object table follows POVID's "object co-occurrence" idea: an object is replaced
by one that often appears next to it in COCO-style scenes (fork -> knife), which is the kind of
error a VLM leaning on language priors makes.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CO_OCCURRENCE",
    "IRREGULAR_PLURALS",
    "COLORS",
    "NUMBER_WORDS",
    "SPATIAL_SWAPS",
    "YES_NO",
    "OCR_CONFUSABLES",
    "plural_of",
    "singular_of",
]

# object -> objects that co-occur with it in everyday scenes (singular forms, lower case)
CO_OCCURRENCE: Final[dict[str, tuple[str, ...]]] = {
    "person": ("man", "woman", "child"),
    "man": ("woman", "person", "boy"),
    "woman": ("man", "girl", "person"),
    "boy": ("girl", "man", "child"),
    "girl": ("boy", "woman", "child"),
    "child": ("dog", "adult", "ball"),
    "dog": ("cat", "frisbee", "leash"),
    "cat": ("dog", "couch", "laptop"),
    "horse": ("cow", "saddle", "fence"),
    "cow": ("horse", "sheep", "fence"),
    "sheep": ("cow", "dog", "goat"),
    "bird": ("kite", "tree", "bench"),
    "car": ("truck", "bus", "motorcycle"),
    "truck": ("car", "bus", "van"),
    "bus": ("car", "truck", "train"),
    "train": ("bus", "platform", "car"),
    "bicycle": ("motorcycle", "car", "helmet"),
    "motorcycle": ("bicycle", "car", "helmet"),
    "boat": ("surfboard", "dock", "kayak"),
    "airplane": ("bird", "kite", "helicopter"),
    "fork": ("knife", "spoon", "plate"),
    "knife": ("fork", "spoon", "cutting board"),
    "spoon": ("fork", "knife", "bowl"),
    "plate": ("bowl", "cup", "fork"),
    "bowl": ("plate", "cup", "spoon"),
    "cup": ("mug", "bottle", "glass"),
    "mug": ("cup", "glass", "bottle"),
    "glass": ("cup", "bottle", "mug"),
    "bottle": ("cup", "glass", "can"),
    "table": ("chair", "desk", "bench"),
    "chair": ("table", "couch", "bench"),
    "couch": ("chair", "bed", "pillow"),
    "bed": ("couch", "pillow", "lamp"),
    "pillow": ("blanket", "couch", "bed"),
    "laptop": ("keyboard", "mouse", "monitor"),
    "keyboard": ("mouse", "laptop", "monitor"),
    "mouse": ("keyboard", "laptop", "phone"),
    "phone": ("laptop", "remote", "book"),
    "book": ("magazine", "laptop", "lamp"),
    "clock": ("lamp", "picture", "window"),
    "lamp": ("clock", "vase", "book"),
    "vase": ("flower", "bowl", "lamp"),
    "pizza": ("sandwich", "cake", "plate"),
    "sandwich": ("pizza", "hot dog", "salad"),
    "cake": ("pizza", "donut", "plate"),
    "donut": ("cake", "cookie", "coffee"),
    "banana": ("apple", "orange", "bowl"),
    "apple": ("orange", "banana", "pear"),
    "orange": ("apple", "banana", "lemon"),
    "broccoli": ("carrot", "rice", "plate"),
    "carrot": ("broccoli", "potato", "plate"),
    "umbrella": ("handbag", "hat", "raincoat"),
    "handbag": ("backpack", "umbrella", "suitcase"),
    "backpack": ("handbag", "suitcase", "umbrella"),
    "suitcase": ("backpack", "handbag", "bag"),
    "tie": ("shirt", "suit", "jacket"),
    "hat": ("umbrella", "helmet", "cap"),
    "kite": ("bird", "frisbee", "balloon"),
    "frisbee": ("dog", "kite", "ball"),
    "ball": ("bat", "glove", "frisbee"),
    "skateboard": ("surfboard", "bicycle", "helmet"),
    "surfboard": ("skateboard", "boat", "wave"),
    "tree": ("bush", "bench", "fence"),
    "bench": ("chair", "tree", "table"),
    "sign": ("pole", "traffic light", "car"),
    "window": ("door", "curtain", "clock"),
    "door": ("window", "wall", "chair"),
    "sink": ("toilet", "mirror", "faucet"),
    "toilet": ("sink", "bathtub", "mirror"),
    "refrigerator": ("oven", "microwave", "sink"),
    "oven": ("microwave", "refrigerator", "stove"),
    "microwave": ("oven", "refrigerator", "toaster"),
    "tv": ("remote", "couch", "laptop"),
    "remote": ("tv", "phone", "controller"),
}

IRREGULAR_PLURALS: Final[dict[str, str]] = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "child": "children",
    "sheep": "sheep",
    "knife": "knives",
    "mouse": "mice",
    "glass": "glasses",
    "bus": "buses",
    "sandwich": "sandwiches",
    "couch": "couches",
    "bench": "benches",
    "hot dog": "hot dogs",
    "cutting board": "cutting boards",
    "traffic light": "traffic lights",
    "bush": "bushes",
    "bathtub": "bathtubs",
    "potato": "potatoes",
    "box": "boxes",
}

COLORS: Final[tuple[str, ...]] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
    "black", "white", "gray", "grey", "silver", "gold",
)

NUMBER_WORDS: Final[tuple[str, ...]] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)

# each word maps to its spatial opposite (both directions listed)
SPATIAL_SWAPS: Final[dict[str, str]] = {
    "left": "right",
    "right": "left",
    "above": "below",
    "below": "above",
    "top": "bottom",
    "bottom": "top",
    "over": "under",
    "under": "over",
    "upper": "lower",
    "lower": "upper",
    "front": "back",
    "back": "front",
    "inside": "outside",
    "outside": "inside",
    "behind": "beside",
    "beside": "behind",
    "near": "far from",
}

YES_NO: Final[dict[str, str]] = {"yes": "no", "no": "yes", "true": "false", "false": "true"}

# substring -> substrings that look alike in print (applied in either direction where listed)
OCR_CONFUSABLES: Final[dict[str, tuple[str, ...]]] = {
    "rn": ("m",),
    "m": ("rn",),
    "cl": ("d",),
    "d": ("cl",),
    "vv": ("w",),
    "w": ("vv",),
    "0": ("O", "o"),
    "O": ("0",),
    "o": ("0",),
    "1": ("l", "I"),
    "l": ("1", "I"),
    "I": ("1", "l"),
    "5": ("S",),
    "S": ("5",),
    "8": ("B",),
    "B": ("8",),
    "2": ("Z",),
    "Z": ("2",),
    "6": ("G",),
    "G": ("6",),
    "u": ("v",),
    "v": ("u",),
    "e": ("c",),
    "c": ("e",),
}


def plural_of(noun: str) -> str:
    """Return the plural of a singular ``noun`` from the tables (regular English rule otherwise)."""
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


_SINGULAR = {plural_of(n): n for n in CO_OCCURRENCE}


def singular_of(word: str) -> str | None:
    """Return the table's singular form when ``word`` (lower case) is the plural of a known object, else None."""
    return _SINGULAR.get(word)
