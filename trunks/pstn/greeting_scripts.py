"""What simulated answerers say, per language: people's first words, and answering machines'
greetings (personal, business, carrier voicemail) as sentences a greeting picks from.

``{name}``, ``{company}`` and ``{number}`` are filled in per greeting. A machine script's
sentences are in speaking order; ``*`` marks the ones every greeting from it keeps (the rest
are added while the greeting is shorter than the length it was given).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scripts:
    voice: str  # a Calls API language code for resolve_voice
    short: tuple[str, ...]  # a person's usual first words
    long: tuple[str, ...]  # a person's longer first words
    again: tuple[str, ...]  # a person hearing nobody, a few seconds later
    machine: tuple[tuple[str, ...], ...]  # greetings, one sentence an item
    names: tuple[str, ...]
    companies: tuple[str, ...]


ENGLISH_MACHINES = (
    (
        "*Hi, you've reached {name}.",
        "I can't take your call right now.",
        "I'm probably out, or on the other line.",
        "*Please leave a message after the tone.",
        "I'll call you back as soon as I can.",
        "Thanks, and have a great day!",
    ),
    (
        "*Hey, it's {name}.",
        "Sorry I missed you.",
        "*Leave your name and number and I'll get back to you.",
        "Bye!",
    ),
    (
        "*Hello, you have reached the {name} family.",
        "We are not available to take your call at the moment.",
        "*Please leave a message, and we will return your call.",
        "If this is urgent, try my mobile.",
        "Thank you.",
    ),
    (
        "*Thank you for calling {company}.",
        "Our office is currently closed.",
        "Our opening hours are Monday to Friday, nine to five.",
        "*Please leave your name, number and a brief message.",
        "We will return your call on the next business day.",
    ),
    (
        "*The person you are calling is not available.",
        "*At the tone, please record your message.",
        "When you have finished recording, you may hang up.",
        "Or press pound for more options.",
    ),
    (
        "*The number you have dialed, {number}, is not available.",
        "Please leave a message after the tone.",
        "*To leave a callback number, press five.",
    ),
    (
        "*{name} speaking, well, not really, this is a recording.",
        "*You know what to do.",
        "Talk to you soon.",
    ),
)

ENGLISH = dict(
    short=(
        "Hello?", "Yeah, hello?", "Hi, this is {name}.", "Hello... hello?", "Yes?", "Hi.",
        "{name} speaking.", "Hello, {name} here.", "Hey!", "Good morning.",
    ),
    long=(
        "Hello, {name} residence, who's calling?",
        "Good afternoon, {company}, how can I help you?",
        "Hi, this is {name}, who am I speaking to?",
        "Hello? Sorry, I was in the garden, who is it?",
    ),
    again=("Hello? Anyone there?", "Hello?", "Is anybody there?", "Hello, can you hear me?"),
    machine=ENGLISH_MACHINES,
    names=("Anna", "Mark", "Maria", "John", "Priya", "Tom", "Laura", "Ahmed", "Smith", "Chen"),
    companies=("Acme Plumbing", "Northside Dental", "Blue River Insurance", "City Garage"),
)  # fmt: skip

SCRIPTS = (
    Scripts("en", **ENGLISH),
    Scripts("en-gb", **ENGLISH),
    Scripts("en-in", **ENGLISH),
    Scripts(
        "es",
        short=("¿Hola?", "¿Sí, dígame?", "Hola, soy {name}.", "¿Bueno?", "¿Diga?"),
        long=(
            "Hola, casa de los {name}, ¿quién habla?",
            "Buenas tardes, {company}, ¿en qué puedo ayudarle?",
        ),
        again=("¿Hola? ¿Hay alguien?", "¿Hola?", "¿Me oye?"),
        machine=(
            (
                "*Hola, has llamado a {name}.", "Ahora no puedo atenderte.",
                "*Deja tu mensaje después de la señal.", "Te llamaré lo antes posible.", "Gracias.",
            ),
            (
                "*La persona a la que llama no está disponible en este momento.",
                "*Por favor, deje su mensaje después de la señal.",
                "Cuando termine, puede colgar.",
            ),
            (
                "*Gracias por llamar a {company}.", "Nuestra oficina está cerrada.",
                "*Deje su nombre y su número, y le devolveremos la llamada.",
            ),
        ),
        names=("Ana", "García", "Luis", "Carmen", "Javier"),
        companies=("Seguros Sol", "Clínica Norte", "Talleres López"),
    ),
    Scripts(
        "de",
        short=("Hallo?", "Ja, hallo?", "Hier ist {name}.", "Hallo... hallo?", "{name}?"),
        long=(
            "Guten Tag, bei {name}, wer spricht da bitte?",
            "{company}, guten Tag, was kann ich für Sie tun?",
        ),
        again=("Hallo? Ist da jemand?", "Hallo?", "Hören Sie mich?"),
        machine=(
            (
                "*Hallo, hier ist der Anschluss von {name}.", "Ich bin gerade nicht erreichbar.",
                "*Bitte hinterlassen Sie eine Nachricht nach dem Signalton.", "Vielen Dank.",
            ),
            (
                "*Der gewünschte Gesprächspartner ist zurzeit nicht erreichbar.",
                "*Bitte sprechen Sie nach dem Signalton.",
            ),
            (
                "*Willkommen bei {company}.", "Unser Büro ist zurzeit nicht besetzt.",
                "*Hinterlassen Sie Ihren Namen und Ihre Nummer, wir rufen zurück.",
            ),
        ),
        names=("Anna", "Müller", "Schmidt", "Jonas", "Petra"),
        companies=("Autohaus Weber", "Praxis Dr. Klein", "Stadtwerke Nord"),
    ),
    Scripts(
        "fr",
        short=("Allô?", "Oui, allô?", "Bonjour, c'est {name}.", "Allô... allô?", "Oui?"),
        long=(
            "Bonjour, famille {name}, qui est à l'appareil?",
            "{company}, bonjour, que puis-je pour vous?",
        ),
        again=("Allô? Il y a quelqu'un?", "Allô?", "Vous m'entendez?"),
        machine=(
            (
                "*Bonjour, vous êtes bien chez {name}.",
                "Je ne suis pas disponible pour le moment.",
                "*Laissez-moi un message après le bip.", "Merci et à bientôt.",
            ),
            (
                "*Votre correspondant n'est pas joignable actuellement.",
                "*Veuillez laisser un message après le bip sonore.",
            ),
            (
                "*Merci d'avoir appelé {company}.", "Nos bureaux sont fermés.",
                "*Laissez votre nom et votre numéro, nous vous rappellerons.",
            ),
        ),
        names=("Anne", "Martin", "Dubois", "Julien", "Claire"),
        companies=("Garage Central", "Cabinet Moreau", "Assurances Leroy"),
    ),
)  # fmt: skip
SCRIPT_WEIGHTS = (0.35, 0.15, 0.1, 0.15, 0.125, 0.125)
