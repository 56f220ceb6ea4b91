"""Realistic prediction requests built from X_test_update.csv rows, with or without a shift.

Used to exercise drift detection end to end (requests -> API -> inference log -> drift job):

- none: a seeded random sample of the listings, as they are;
- length: half of the listings much longer (designation extended with its own words,
  description tripled), half cut (designation to its first three words, no description);
- category: listings of a few product families only (pool and spa, books, video games),
  chosen by keywords of their designation, so the predicted-class mix moves;
- language: listings rewritten word by word into German with a word map of frequent French
  listing words (a new market), so the share of tokens unknown to the model rises. English is
  not used: real French listings carry English titles, so the default model knows it.

Every shift is deterministic for a seed and keeps the API's limits (non-empty designation,
`max_chars` characters per field).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pandas as pd

SHIFTS: tuple[str, ...] = ("none", "length", "category", "language")
Request = dict[str, str | None]

# Keywords of the designation (case-insensitive, whole words) of a few product families.
CATEGORY_FAMILIES: dict[str, str] = {
    "pool_spa": r"piscine|piscines|spa|jacuzzi|pool|liner|skimmer",
    "books": r"livre|livres|roman|tome|tomes|bd|manga|poche|ouvrage|édition",
    "video_games": r"ps[2345]|xbox|nintendo|wii|switch|playstation|jeu vidéo|game",
}

# French listing words -> (English, German), as "french=english/german; ...". The most
# frequent words of listings: the function words keep the sentence shape, the content words
# are what the model knows in French only.
_WORDS = """
de=of/von; du=of the/vom; des=of the/der; le=the/der; la=the/die; les=the/die; un=a/ein;
une=a/eine; et=and/und; ou=or/oder; en=in/aus; dans=in/in; au=to the/zum; aux=to the/zu;
à=to/zu; pour=for/für; avec=with/mit; sans=without/ohne; sur=on/auf; sous=under/unter;
par=by/durch; est=is/ist; sont=are/sind; se=itself/sich; ce=this/dieses; cet=this/dieser;
cette=this/diese; son=its/sein; sa=its/seine; ses=its/seine; votre=your/Ihr; vos=your/Ihre;
vous=you/Sie; notre=our/unser; nos=our/unsere; nous=we/wir; qui=which/welche; que=that/dass;
pas=not/nicht; ne=not/nicht; plus=more/mehr; très=very/sehr; tout=all/alles; tous=all/alle;
toute=all/ganze; toutes=all/alle; chaque=each/jeder; deux=two/zwei; jusqu=up to/bis;
entre=between/zwischen; après=after/nach; avant=before/vor; dès=from/ab; depuis=since/seit;
comme=like/wie; selon=according to/laut; environ=about/etwa; grâce=thanks/dank;
même=same/gleich; bien=well/gut; neuf=new/neu; neuve=new/neu; nouveau=new/neu;
nouvelle=new/neue; occasion=used/gebraucht; état=condition/Zustand; bon=good/gut;
lot=bundle/Paket; qualité=quality/Qualität; cadeau=gift/Geschenk; livraison=delivery/Lieferung;
gratuite=free/kostenlos; rapide=fast/schnell; ans=years/Jahre; mois=months/Monate;
jours=days/Tage; heures=hours/Stunden; minutes=minutes/Minuten; garantie=warranty/Garantie;
idéal=ideal/ideal; idéale=ideal/ideal; idée=idea/Idee; facile=easy/einfach;
facilement=easily/leicht; produit=product/Produkt; modèle=model/Modell; modèles=models/Modelle;
marque=brand/Marke; couleur=colour/Farbe; couleurs=colours/Farben; coloris=colour/Farbe;
taille=size/Größe; dimensions=dimensions/Abmessungen; hauteur=height/Höhe; poids=weight/Gewicht;
diamètre=diameter/Durchmesser; matière=material/Material; bois=wood/Holz; métal=metal/Metall;
acier=steel/Stahl; verre=glass/Glas; cuir=leather/Leder; coton=cotton/Baumwolle;
tissu=fabric/Stoff; papier=paper/Papier; blanc=white/weiß; noir=black/schwarz; bleu=blue/blau;
rouge=red/rot; vert=green/grün; gris=grey/grau; rose=pink/rosa; jaune=yellow/gelb;
beige=beige/beige; grand=large/groß; grande=large/große; petit=small/klein; petite=small/kleine;
petits=small/kleine; haute=high/hohe; piscine=pool/Schwimmbad; piscines=pools/Schwimmbäder;
eau=water/Wasser; pompe=pump/Pumpe; filtre=filter/Filter; filtration=filtration/Filterung;
bâche=cover/Plane; jardin=garden/Garten; terrasse=terrace/Terrasse;
extérieur=outdoor/Außenbereich; intérieur=indoor/Innenbereich; maison=home/Haus; salon=living
room/Wohnzimmer; chambre=bedroom/Schlafzimmer; bureau=desk/Schreibtisch; table=table/Tisch;
chaise=chair/Stuhl; fauteuil=armchair/Sessel; canapé=sofa/Sofa; lit=bed/Bett;
matelas=mattress/Matratze; meuble=furniture/Möbel; mobilier=furniture/Möbel;
rangement=storage/Aufbewahrung; coussin=cushion/Kissen; coussins=cushions/Kissen;
housse=cover/Bezug; couette=duvet/Bettdecke; linge=linen/Wäsche; tapis=rug/Teppich;
décoration=decoration/Dekoration; déco=decor/Deko; lumière=light/Licht; enfant=child/Kind;
enfants=children/Kinder; bébé=baby/Baby; naissance=birth/Geburt; fille=girl/Mädchen;
garçon=boy/Junge; jouet=toy/Spielzeug; jouets=toys/Spielzeuge; jeu=game/Spiel;
jeux=games/Spiele; joueurs=players/Spieler; société=board/Gesellschaft;
peluche=plush/Plüschtier; poupée=doll/Puppe; figurine=figure/Figur; figurines=figures/Figuren;
voiture=car/Auto; livre=book/Buch; livres=books/Bücher; roman=novel/Roman; tome=volume/Band;
tomes=volumes/Bände; édition=edition/Ausgabe; auteur=author/Autor; ouvrage=work/Werk;
pages=pages/Seiten; couverture=cover/Einband; revue=magazine/Zeitschrift;
journal=newspaper/Zeitung; carte=card/Karte; cartes=cards/Karten;
collection=collection/Sammlung; boîte=box/Schachtel; coffret=box set/Kassette;
emballage=packaging/Verpackung; notice=manual/Anleitung; pièce=part/Teil; pièces=parts/Teile;
accessoire=accessory/Zubehör; accessoires=accessories/Zubehör; batterie=battery/Akku;
chargeur=charger/Ladegerät; câble=cable/Kabel; écran=screen/Bildschirm; moteur=motor/Motor;
puissance=power/Leistung; vitesse=speed/Geschwindigkeit; sécurité=safety/Sicherheit;
protection=protection/Schutz; entretien=care/Pflege; montage=assembly/Montage;
utilisation=use/Verwendung; usage=use/Gebrauch; fabrication=manufacturing/Herstellung;
français=French/Französisch; française=French/französische; france=France/Frankreich;
origine=origin/Herkunft; original=original/Original; envoi=shipping/Versand;
expédié=shipped/versandt; expédition=shipping/Versand; livré=delivered/geliefert;
livrée=delivered/geliefert; vendu=sold/verkauft; prix=price/Preis; stock=stock/Lager;
offre=offer/Angebot; confort=comfort/Komfort; doux=soft/weich; robuste=sturdy/robust;
pratique=practical/praktisch; complet=complete/komplett; parfait=perfect/perfekt;
jamais=never/nie; utilisé=used/benutzt; permet=allows/ermöglicht; comprend=includes/enthält;
contient=contains/enthält; convient=suits/passt; fonctionne=works/funktioniert;
inclus=included/inklusive; fourni=supplied/geliefert; fournie=supplied/geliefert;
réglable=adjustable/verstellbar; résistant=resistant/beständig; lavable=washable/waschbar;
été=summer/Sommer; hiver=winter/Winter; saison=season/Saison; noël=Christmas/Weihnachten;
anniversaire=birthday/Geburtstag; famille=family/Familie; personnes=people/Personen;
places=seats/Plätze; nombre=number/Anzahl; numéro=number/Nummer; référence=reference/Referenz;
réf=ref/Art; neufs=new/neue; ancien=old/alt; ancienne=old/alte; rare=rare/selten;
temps=time/Zeit; jour=day/Tag; fois=times/mal; main=hand/Hand; pied=foot/Fuß; pieds=feet/Füße;
porte=door/Tür; sol=floor/Boden; air=air/Luft; sable=sand/Sand; chaleur=heat/Wärme;
température=temperature/Temperatur; surface=surface/Oberfläche; espace=space/Raum;
système=system/System; équipement=equipment/Ausrüstung; matériel=equipment/Material;
outillage=tools/Werkzeuge; jardinage=gardening/Gartenarbeit; scolaire=school/Schul;
école=school/Schule; cahier=notebook/Heft; stylo=pen/Stift; encre=ink/Tinte; animaux=pets/Tiere;
chien=dog/Hund; chat=cat/Katze; sac=bag/Tasche; console=console/Konsole; vidéo=video/Video;
manette=controller/Controller
"""


def _word_map(text: str) -> dict[str, tuple[str, str]]:
    pairs: dict[str, tuple[str, str]] = {}
    for item in text.split(";"):
        french, translations = item.strip().split("=")
        english, german = translations.split("/")
        pairs[french] = (english, german)
    return pairs


WORD_MAP: dict[str, tuple[str, str]] = _word_map(_WORDS)
# The shift's language: WORD_MAP's second column (English, the first, is no shift: real
# listings already mix it in).
GERMAN = 1

_WORD = re.compile(r"[^\W\d_]+")
_CATEGORY = {
    family: re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)
    for family, pattern in CATEGORY_FAMILIES.items()
}


def _clip(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut at a space when there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


def _request(designation: str, description: str | None, max_chars: int) -> Request:
    designation = _clip(designation.strip(), max_chars) or "-"
    description = _clip(description, max_chars) if description else None
    return {"designation": designation, "description": description}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _lengthen_or_cut(designation: str, description: str, rng: random.Random) -> Request:
    if rng.random() < 0.5:
        words = designation.split()
        extension = " ".join(rng.sample(words, len(words)))  # the designation's own words
        body = description or designation
        return {
            "designation": f"{designation} - {extension} - {designation}",
            "description": " ".join([body] * 3),
        }
    return {"designation": " ".join(designation.split()[:3]), "description": None}


def _translate(text: str, language: int) -> str:
    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        translated = WORD_MAP.get(word.lower())
        if translated is None:
            return word
        target = translated[language]
        if word.isupper() and len(word) > 1:
            return target.upper()
        if word[0].isupper():
            return target[0].upper() + target[1:]
        return target

    return _WORD.sub(replace, text)


def _category_positions(frame: pd.DataFrame, n: int, rng: random.Random) -> list[int]:
    designations = [_text(value) for value in frame["designation"].tolist()]
    matches = {
        family: [i for i, text in enumerate(designations) if pattern.search(text)]
        for family, pattern in _CATEGORY.items()
    }
    families = [family for family, positions in matches.items() if positions]
    if not families:
        raise ValueError(
            "no listing matches the keywords of any family of the category shift "
            f"({', '.join(CATEGORY_FAMILIES)})"
        )
    positions: list[int] = []
    for i, family in enumerate(families):
        share = n // len(families) + (1 if i < n % len(families) else 0)
        pool = matches[family]
        # Without replacement while the family has enough listings, then with replacement.
        positions += rng.sample(pool, min(share, len(pool)))
        positions += rng.choices(pool, k=share - min(share, len(pool)))
    rng.shuffle(positions)
    return positions


def shifted_requests(
    test_frame: pd.DataFrame,
    n: int,
    shift: str = "none",
    seed: int = 0,
    *,
    max_chars: int = 10_000,
) -> list[Request]:
    """`n` requests {"designation", "description"} from the listings of `test_frame`.

    `shift`: one of SHIFTS (see the module docstring). Rows are drawn without replacement
    while there are enough of them, with replacement beyond. `max_chars`: the API's
    `max_text_chars` (default 10,000); longer fields are cut at a space.
    """
    return _shifted(test_frame, n, shift, seed, max_chars)[1]


def labelled_requests(
    frame: pd.DataFrame,
    n: int,
    shift: str = "none",
    seed: int = 0,
    *,
    max_chars: int = 10_000,
) -> tuple[list[Request], list[int]]:
    """`shifted_requests` from labelled listings (with `prdtypecode`), and the true code of
    each request: the corrections `rakuten simulate-traffic --feedback` sends. A shift keeps
    the label (the listing is the same product, described otherwise)."""
    if "prdtypecode" not in frame.columns:
        raise ValueError("labelled_requests needs a prdtypecode column")
    positions, requests = _shifted(frame, n, shift, seed, max_chars)
    codes = frame["prdtypecode"].tolist()
    return requests, [int(codes[position]) for position in positions]


def _shifted(
    test_frame: pd.DataFrame, n: int, shift: str, seed: int, max_chars: int
) -> tuple[list[int], list[Request]]:
    """The positions of the rows drawn and the requests built from them."""
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; choose one of {', '.join(SHIFTS)}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if n and test_frame.empty:
        raise ValueError("test_frame has no listings")
    rng = random.Random(f"{seed}-{shift}")
    if shift == "category":
        positions = _category_positions(test_frame, n, rng)
    else:
        size = len(test_frame)
        positions = rng.sample(range(size), min(n, size)) + rng.choices(
            range(size), k=max(0, n - size)
        )
    designations = test_frame["designation"].tolist()
    descriptions = (
        test_frame["description"].tolist()
        if "description" in test_frame.columns
        else [None] * len(test_frame)
    )
    transform: Callable[[str, str], Request]
    if shift == "length":

        def transform(designation: str, description: str) -> Request:
            return _lengthen_or_cut(designation, description, rng)

    elif shift == "language":

        def transform(designation: str, description: str) -> Request:
            return {
                "designation": _translate(designation, GERMAN),
                "description": _translate(description, GERMAN),
            }

    else:

        def transform(designation: str, description: str) -> Request:
            return {"designation": designation, "description": description}

    requests = []
    for position in positions:
        changed = transform(_text(designations[position]), _text(descriptions[position]))
        requests.append(_request(_text(changed["designation"]), changed["description"], max_chars))
    return positions, requests


def requests_with_feedback(
    test_frame: pd.DataFrame | None,
    labelled_frame: pd.DataFrame | None,
    n: int,
    feedback: float,
    shift: str = "none",
    seed: int = 0,
    *,
    max_chars: int = 10_000,
) -> tuple[list[Request], list[int | None]]:
    """`n` requests, a share `feedback` of them labelled listings, and the label of each
    (None for the unlabelled ones): what `simulate-traffic --feedback` sends and corrects.

    X_test listings have no labels, so the labelled share comes from `labelled_frame`
    (training listings with `prdtypecode`; the CLI uses the rows of the last partition, 100,
    which a model trained before it has never seen); the rest from `test_frame`. The labelled
    requests are spread over the run at seeded positions."""
    if not 0 <= feedback <= 1:
        raise ValueError(f"feedback must be a share between 0 and 1, not {feedback!r}")
    labelled = round(n * feedback)
    if n - labelled and test_frame is None:
        raise ValueError("unlabelled requests need a test frame")
    if labelled and labelled_frame is None:
        raise ValueError("labelled requests need a labelled frame")
    rng = random.Random(f"{seed}-feedback")
    at = set(rng.sample(range(n), labelled))
    corrected, codes = (
        labelled_requests(labelled_frame, labelled, shift, seed, max_chars=max_chars)
        if labelled and labelled_frame is not None
        else ([], [])
    )
    plain = (
        shifted_requests(test_frame, n - labelled, shift, seed, max_chars=max_chars)
        if n - labelled and test_frame is not None
        else []
    )
    requests: list[Request] = []
    labels: list[int | None] = []
    labelled_iter, plain_iter = iter(zip(corrected, codes, strict=True)), iter(plain)
    for position in range(n):
        if position in at:
            request, code = next(labelled_iter)
            requests.append(request)
            labels.append(code)
        else:
            requests.append(next(plain_iter))
            labels.append(None)
    return requests, labels
