"""What the simulated groups say: names, chatter, drop posts, and the templates' slots."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

_T = TypeVar("_T")

FIRST_NAMES: Final = (
    "Thabo", "Sipho", "Lerato", "Nomvula", "Johan", "Pieter", "Anele", "Zanele", "Themba",
    "Bongani", "Karabo", "Mpho", "Lindiwe", "Sibusiso", "Ayanda", "Nkosinathi", "Kagiso",
    "Tshepo", "Refilwe", "Mandla", "Jaco", "Riaan", "Chantelle", "Marius", "Naledi", "Palesa",
    "Dumisani", "Vusi", "Hendrik", "Ruan", "Lebo", "Busisiwe", "Precious", "Gift", "Blessing",
    "Kabelo", "Tumelo", "Lwazi", "Sizwe", "Xolani", "Andile", "Nonhlanhla", "Zoë", "Thandiwe",
    "Mpumelelo", "Keabetswe", "Ané", "Siyabonga", "Rethabile", "Moses",
)  # fmt: skip
LAST_NAMES: Final = (
    "Mokoena", "Nkosi", "Dlamini", "Ndlovu", "van der Merwe", "Botha", "Khumalo", "Mahlangu",
    "Molefe", "Sithole", "Zulu", "Naidoo", "Pillay", "Pretorius", "Mabaso", "Maseko", "Nel",
    "Venter", "Mthembu", "Radebe", "Shabalala", "Baloyi", "Mathebula", "Coetzee", "Fourie",
    "Steyn", "le Roux", "Ngcobo", "Tshabalala", "Mofokeng", "Modise", "du Plessis",
)  # fmt: skip
NICKNAMES: Final = (
    "Bongz", "T-Man", "Mr Fibre", "Lebza", "Sbu", "Mpho_Velo", "Fibre King 👑", "JJ", "Ta Vusi",
    "Skhumba", "Oom Piet", "Bra Themba", "Ntate K", "~Zanele~", "Sisi Lindi", "Kb 🔧",
)  # fmt: skip
NAME_SUFFIXES: Final = (" Velo", " (Installer)", " Lawley", " QA", " Splicer", " Team Lead")
BUSINESS: Final = ("Velo Fibre Installs", "KB Telecoms (Pty) Ltd", "Sizwe Civils", "Fibretech SA")
PHONE_PREFIXES: Final = (
    "60", "61", "62", "63", "64", "65", "66", "67", "68", "71", "72", "73", "74", "76", "78",
    "79", "81", "82", "83", "84",
)  # fmt: skip
EMOJI: Final = (
    "👍", "🙏", "✅", "💪", "🔥", "😂", "👷🏾‍♂️", "⚡", "🚧", "📸", "🙌🏽", "😅", "☀️", "🌧️", "🇿🇦",
    "👌🏿", "🤝", "😤", "🥶", "💯",
)  # fmt: skip
_GREETINGS: Final = (
    "Morning team", "Goeie môre span", "Sawubona bafana", "Howzit guys", "Good morning all",
    "Molo team", "Dumelang", "Hi all", "Môre manne", "Good afternoon team",
)  # fmt: skip
_ACKS: Final = (
    "Ok", "Noted 👍", "Sharp sharp", "Yebo", "Dankie", "Ngiyabonga", "Shot boss", "Will do",
    "👍", "🙏🏾", "Ja", "Lekker", "Sure", "Copy", "On it", "Baie dankie", "Ke a leboga", "👍🏽👍🏽",
    "Ok noted", "Thanks", "Haibo", "Eish", "Ja nee", "100%",
)  # fmt: skip
_TOOLS: Final = (
    "splicing kit", "OTDR", "fusion splicer", "ladder", "drill", "cleaver", "power meter",
    "VFL", "bakkie keys", "tool bag", "crimping tool", "hammer drill", "cable locator",
)  # fmt: skip
_MATERIALS: Final = (
    "drop cable", "ONTs", "patch cords", "cable ties", "wall boxes", "UPS units", "P-clips",
    "conduit", "splice trays", "pigtails", "anchors", "fibre boxes",
)  # fmt: skip
_STREETS: Final = (
    "Mthembu Street", "Protea Avenue", "Jacaranda Crescent", "Main Road", "Steenbok Street",
    "Oak Avenue", "Mandela Street", "Tambo Road", "Sisulu Avenue", "Kudu Street",
    "Marula Close", "Impala Road", "Mbeki Street", "Church Street", "Kerk Straat",
)  # fmt: skip
_PLACES: Final = (
    "Lawley Ext 1", "Lawley Ext 3", "Mohadin", "Mamelodi East", "Mamelodi West", "the POP",
    "the cabinet", "FDH 12", "the yard", "Stinkwater", "Extension 5", "the chamber on Main",
    "Block C", "the school", "the clinic",
)  # fmt: skip
_EXCUSES: Final = (
    "traffic on the N1", "bakkie won't start", "taxi strike", "picking up stock at the yard",
    "load shedding at home", "flat tyre", "waiting for the supervisor",
)  # fmt: skip
_WHEN: Final = ("tomorrow", "after lunch", "this afternoon", "on Monday", "later", "on Friday")
_TIMES: Final = ("14:00", "after lunch", "7am", "09:30", "end of day", "12h00", "before 4")
_FIXES: Final = (
    "fixed the ONT barcode", "added the power meter reading", "retook the house photo",
    "UPS serial now clear", "customer signature added", "cable entry photos retaken",
    "green lights photo added", "new photo of the wall box", "power meter now -17.5 dBm",
)  # fmt: skip
_DOCS: Final = ("timesheets", "stock sheet", "as-built", "daily report", "safety file")
_AFRIKAANS_ZULU: Final = (
    "Eish", "Haibo", "Lekker man", "Ag shame", "Yoh", "Sho", "Sharp", "Aweh", "Hayibo",
    "Ja-nee", "Siyabonga", "Kwaai", "Jislaaik",
)  # fmt: skip

_CHATTER: Final = (
    "Pole {n} done, moving to next",
    "Pole {n} done {emoji}",
    "Who has the {tool}?",
    "Who has the {tool}? Need it at {place}",
    "{greet} {emoji}",
    "{greet}, where is everyone working today?",
    "Running late, {excuse}",
    "Customer not home at {n} {street}, will come back {when}",
    "Splicing done at {place} {emoji}",
    "Need more {material}, only {small} left",
    "{name} where are you? Need the {tool} at {place}",
    "Trenching on {street} finished",
    "ONT online at {n} {street}, reading -{dbm} dBm",
    "Team at {place} is done for today {emoji}",
    "Any update on the {material} delivery?",
    "Bakkie has a flat at {place} 😩 {afr}",
    "{afr} the rain {emoji} we stop for now",
    "Who is going to {place} {when}?",
    "Meeting at the yard {time}",
    "Please send the {doc} before {time}",
    "{afr}, {place} has no power again",
    "Customer at {n} {street} wants the router in the lounge, is that ok?",
    "Fibre is broken between pole {n} and pole {n2}, need a splicer",
    "Reading too low at {n} {street}: -{dbm} dBm, re-cleaning the connector",
    "{name} please check the {material} in the bakkie",
    "Kan iemand my help by {place}? Ek sukkel met die {tool}",
    "Ngicela ukusiza e-{place}, the {tool} is not working",
    "Lunch 🍗 back in 30",
    "{small} installs done today {emoji}{emoji2}",
    "Waiting for the landlord at {n} {street}",
    "Dog at {n} {street} 🐕 not going in there {afr}",
    "Who took the {tool} from the yard??",
    "Reminder: PPE on site, no hard hat no work ⛑️",
    "Wayleave for {street} approved ✅",
    "Can we get 2 more guys at {place} {when}?",
    "Customer asking about the Wi-Fi password, what do we tell them?",
    "“{place}” route is blocked, police on site 🚓",
    "Stock count {time} please",
    "{ack}",
    "{ack} {emoji}",
)
_LONG_PARTS: Final = (
    "Pole {n} done.",
    "Splicing at {place} finished, all ports tested.",
    "We still need {small} {material} for tomorrow.",
    "Customer at {n} {street} was not home, rescheduled for {when}.",
    "The {tool} battery is almost flat, please charge it tonight.",
    "Readings were between -{dbm} and -{dbm2} dBm on all the ONTs.",
    "Reminder to everyone: photos must show the ONT barcode and the green lights clearly.",
    "Please don't leave cable offcuts on the pavement, the municipality complained.",
    "Safety first — ladders must be footed at all times ⛑️",
    "{afr}, it was a long day but the team did well {emoji}",
    "Trenching crew will start on {street} {when}.",
    "All timesheets to {name} by Friday.",
)
DROP_POSTS: Final = (
    "{d} done",
    "{d}\nAll photos attached",
    "{d} completed ✅",
    "{d}",
    "{d}",
    "Drop {d} installed, photos to follow",
    "Good day team, {d} done at {n} {street}",
    "{d} - {n} {street}",
    "{d} done. ONT online, -{dbm} dBm {emoji}",
    "{d}\n{n} {street}\nONT SN: {sn}\nAll 12 photos attached",
    "Installation complete {d} 📸",
    "{d} ✅✅",
    "{d} done 👷🏾‍♂️",
    "{d} klaar {emoji}",
    "Done: {d}",
)
DOUBLE_DROP_POSTS: Final = (
    "{d} and {d2} done",
    "{d}\n{d2}\nBoth done, photos attached",
    "{d}, {d2} completed {emoji}",
)
RESUBMISSIONS: Final = (
    "Resubmitting {d} {fix}",
    "{d} resubmitted, {fix}",
    "{d} redone 🔄 {fix}",
    "Re-sent photos for {d}",
    "{d} corrected — {fix}",
    "{d}\nResubmission: {fix}",
    "{d} again, {fix} {emoji}",
)


DOCUMENT_NAMES: Final = (
    "As-built {place}.pdf", "Stock sheet.xlsx", "Daily report.docx", "Safety file.pdf",
    "Timesheet week {n}.xlsx", "Wayleave {street}.pdf",
)  # fmt: skip


BENCH_PLACES: Final = (
    "Soweto", "Tembisa", "Kagiso", "Diepsloot", "Soshanguve", "Atteridgeville", "Mabopane",
    "Orange Farm", "Ivory Park", "Alexandra", "Katlehong", "Vosloorus", "Daveyton", "Etwatwa",
    "Mamelodi", "Lawley", "Mohadin", "Ga-Rankuwa", "Winterveldt", "Hammanskraal",
    "Olievenhoutbosch",
    "Cosmo City", "Protea Glen", "Sebokeng", "Evaton",
)  # fmt: skip
BENCH_KINDS: Final = (
    "Activations", "FTTH Installs", "Drops QA", "Install Team", "POP{n} Activations",
    "Phase {n}", "Ext {n} Activations",
)  # fmt: skip


def pick(rng: random.Random, items: Sequence[_T]) -> _T:
    """rng.choice, three times faster (the bulk generator picks millions of words)."""
    return items[int(rng.random() * len(items))]


def hex_digits(rng: random.Random, digits: int) -> str:
    """`digits` random upper-case hex digits."""
    return f"{rng.getrandbits(digits * 4):0{digits}X}"


_SLOT_MAKERS: Final[dict[str, Callable[[random.Random], str]]] = {
    "n": lambda r: str(r.randint(1, 240)),
    "n2": lambda r: str(r.randint(1, 240)),
    "small": lambda r: str(r.randint(0, 6)),
    "dbm": lambda r: f"{r.uniform(14.5, 24.9):.1f}",
    "dbm2": lambda r: f"{r.uniform(14.5, 24.9):.1f}",
    "tool": lambda r: pick(r, _TOOLS),
    "material": lambda r: pick(r, _MATERIALS),
    "street": lambda r: pick(r, _STREETS),
    "place": lambda r: pick(r, _PLACES),
    "excuse": lambda r: pick(r, _EXCUSES),
    "when": lambda r: pick(r, _WHEN),
    "time": lambda r: pick(r, _TIMES),
    "ack": lambda r: pick(r, _ACKS),
    "afr": lambda r: pick(r, _AFRIKAANS_ZULU),
    "emoji": lambda r: pick(r, EMOJI),
    "emoji2": lambda r: pick(r, EMOJI),
    "greet": lambda r: pick(r, _GREETINGS),
    "name": lambda r: pick(r, FIRST_NAMES),
    "fix": lambda r: pick(r, _FIXES),
    "doc": lambda r: pick(r, _DOCS),
    "sn": lambda r: pick(r, ("ZTEG", "HWTC", "ALCL")) + hex_digits(r, 8),
}


class Slots(dict[str, str]):
    """Template values made on first use, so a template only pays for its own slots."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random, **fixed: str) -> None:
        super().__init__(fixed)
        self._rng = rng

    def __missing__(self, key: str) -> str:
        value = _SLOT_MAKERS[key](self._rng)
        self[key] = value
        return value


def chatter_text(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.02:
        chosen = rng.sample(_LONG_PARTS, rng.randint(4, len(_LONG_PARTS)))
        parts = [part.format_map(Slots(rng)) for part in chosen]
        head = pick(rng, ("", "Daily report:\n", "Update from {place}:\n", "Team,\n"))
        if rng.random() < 0.4:
            return head.format_map(Slots(rng)) + "".join(f"• {part}\n" for part in parts)
        return head.format_map(Slots(rng)) + pick(rng, (" ", "\n")).join(parts)
    if r < 0.18:
        return pick(rng, _ACKS)
    return pick(rng, _CHATTER).format_map(Slots(rng))
