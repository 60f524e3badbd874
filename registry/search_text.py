"""How the directory's search compares words written in Arabic, French and Latin-script Darija.

Two keys are derived from any text, the same way in Python (for the query and
on SQLite) and in PostgreSQL (`SQL_FUNCTIONS`, for stored generated columns):

- `fold`: lower case, Latin accents removed, Arabic normalised (alef and hamza
  forms to bare alef, alef maqsura to yaa, taa marbuta to haa, diacritics and
  tatweel removed). "Céramique" and "ceramique", "فاطمة" and "فاطمه" fold alike.
- `skeleton`: a phonetic key shared by both scripts, one per word: the consonants
  written in Latin letters, vowels and weak letters dropped, digraphs and
  Algerian spellings merged (ch/sh/ش → s, dj/ج → j, kh/خ → k, gh/غ → g, q/ق → k,
  c before e/i → s), the Arabic article and a final h/taa marbuta dropped,
  doubled letters merged. فاطمة, Fatima and Fatma are all "ftm"; نحاس and nhas
  are "nhs"; تلمسان and Tlemcen are "tlmsn".

`tests/registry/test_search_text.py` holds the two implementations to the same
answers on PostgreSQL. Change both together, then add a migration that
replaces the SQL functions (the generated columns are recomputed by it).
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Any

_UPPER = "ÀÁÂÄÃÅÇÉÈÊËÎÏÍÌÔÖÓÒÕÙÛÜÚŸÑ"
_LOWER_PLAIN = "aaaaaaceeeeiiiiooooouuuuyn"
_LATIN_ACCENTS = "àáâäãåçéèêëîïíìôöóòõùûüúÿñ"
_ARABIC_FROM = "أإآٱىةؤئ"
_ARABIC_TO = "اااايهوي"
# Harakat, superscript alef and tatweel.
_ARABIC_DROP = "".join(chr(c) for c in range(0x064B, 0x0653)) + "\u0670\u0640"

_FOLD_TABLE = str.maketrans(
    _UPPER + _LATIN_ACCENTS + _ARABIC_FROM, _LOWER_PLAIN + _LOWER_PLAIN + _ARABIC_TO, _ARABIC_DROP
)

# Arabic letters to the consonant they are written with in Latin; weak letters drop.
_ARABIC_SKELETON = {
    "ب": "b", "ت": "t", "ث": "t", "ج": "j", "ح": "h", "خ": "k", "د": "d", "ذ": "d",
    "ر": "r", "ز": "z", "س": "s", "ش": "s", "ص": "s", "ض": "d", "ط": "t", "ظ": "d",
    "غ": "g", "ف": "f", "ق": "k", "ك": "k", "ل": "l", "م": "m", "ن": "n", "ه": "h",
    "پ": "b", "ڤ": "f", "گ": "g", "ع": "", "ة": "", "و": "", "ي": "", "ى": "", "ا": "",
    "ء": "", "أ": "", "إ": "", "آ": "", "ٱ": "", "ئ": "", "ؤ": "",
}
_SK_MAPPED = "".join(k for k, v in _ARABIC_SKELETON.items() if v)
_SK_TO = "".join(v for v in _ARABIC_SKELETON.values() if v)
_SK_DROP = "".join(k for k, v in _ARABIC_SKELETON.items() if not v)
_SKELETON_TABLE = str.maketrans(_SK_MAPPED + "pvq", _SK_TO + "bfk", _SK_DROP + "aeiouyw")

_NON_WORD = re.compile(r"[^0-9a-z\u0621-\u064a\u0671-\u06d3]+")


def fold(text: str) -> str:
    """`text` lower-cased, without Latin accents, with Arabic letters normalised."""
    return text.lower().translate(_FOLD_TABLE)


def skeleton(text: str) -> str:
    """The space-separated consonant keys of the words of `text` (see module doc)."""
    s = fold(text)
    s = _NON_WORD.sub(" ", s)
    s = re.sub(r"(^| )ال", r"\1", s)
    s = s.replace("dj", "j")
    s = re.sub(r"[cs]h", "s", s)
    s = s.replace("kh", "k").replace("gh", "g")
    s = re.sub(r"c(?=[eiy])", "s", s)
    s = s.replace("c", "k").replace("x", "ks")
    s = re.sub(r"[هh]( |$)", r"\1", s)
    s = s.translate(_SKELETON_TABLE)
    s = re.sub(r"(.)\1+", r"\1", s)
    return " ".join(s.split())


def words(text: str) -> list[str]:
    """The folded words of `text`."""
    return [w for w in _NON_WORD.split(fold(text)) if w]


def trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def word_similarity(term: str, text: str) -> float:
    """The best trigram similarity of `term` with a word of `text` (0..1), as pg_trgm's
    `word_similarity` approximates it; the SQLite fallback of typo tolerance."""
    mine = trigrams(term)
    if not mine:
        return 0.0
    return max((len(mine & trigrams(w)) / len(mine) for w in words(text)), default=0.0)


def close_enough(term: str, word: str) -> bool:
    """Whether `word` is `term` with a typo or two (both folded; short words never)."""
    if len(term) < 5 or abs(len(term) - len(word)) > 2 or term[0] != word[0]:
        return False
    matcher = SequenceMatcher(None, term, word)
    return matcher.real_quick_ratio() >= 0.8 and matcher.quick_ratio() >= 0.8 and matcher.ratio() >= 0.8


def sqlite_functions_register(sender: object, connection: Any, **kwargs: object) -> None:
    """On SQLite (the embedded default), the SQL names of these functions; PostgreSQL has its own."""
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    raw.create_function("hirfa_fold", 1, lambda t: None if t is None else fold(t), deterministic=True)
    raw.create_function(
        "hirfa_skeleton", 1, lambda t: None if t is None else skeleton(t), deterministic=True
    )
    raw.create_function(
        "hirfa_word_similarity", 2,
        lambda term, t: 0.0 if term is None or t is None else word_similarity(term, t), deterministic=True,
    )


# PostgreSQL: the same two functions, IMMUTABLE so that generated columns and indexes may use them.
SQL_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION hirfa_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT translate(lower(t), '{_UPPER}{_LATIN_ACCENTS}{_ARABIC_FROM}{_ARABIC_DROP}',
                   '{_LOWER_PLAIN}{_LOWER_PLAIN}{_ARABIC_TO}')
$$;
CREATE OR REPLACE FUNCTION hirfa_skeleton(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE s text;
BEGIN
  s := regexp_replace(hirfa_fold(t), '[^0-9a-z\\u0621-\\u064a\\u0671-\\u06d3]+', ' ', 'g');
  s := regexp_replace(s, '(^| )ال', '\\1', 'g');
  s := replace(s, 'dj', 'j');
  s := regexp_replace(s, '[cs]h', 's', 'g');
  s := replace(replace(s, 'kh', 'k'), 'gh', 'g');
  s := regexp_replace(s, 'c(?=[eiy])', 's', 'g');
  s := replace(replace(s, 'c', 'k'), 'x', 'ks');
  s := regexp_replace(s, '[هh]( |$)', '\\1', 'g');
  s := translate(s, '{_SK_MAPPED}pvq{_SK_DROP}aeiouyw',
                 '{_SK_TO}bfk');
  s := regexp_replace(s, '(.)\\1+', '\\1', 'g');
  RETURN btrim(regexp_replace(s, ' +', ' ', 'g'));
END
$$;
"""
