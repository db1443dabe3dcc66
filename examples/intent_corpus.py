"""A generated intent corpus for evaluating intent classifiers, with out-of-scope queries.

Three bot domains (a shop, a bank, a travel agent) of 15 intents each, written as
phrasings with slots. Each intent's phrasings are split between training, validation
and test, so test messages are worded in ways the training data never used; greetings,
sign-offs, casing and typing errors vary on top. Out-of-scope queries come from
unrelated topics and are split the same way. Everything is seeded and deterministic.

    from bot_analytics.examples.intent_corpus import make_corpus
    corpus = make_corpus(domains=("shop", "bank", "travel"), train_per_intent=100)
    corpus.train  # list of (text, intent); out-of-scope examples have intent "unknown"
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UNKNOWN = "unknown"

SLOTS: dict[str, list[str]] = {
    "product": ["sneakers", "the blue hoodie", "a phone case", "wireless earbuds", "the coffee maker",
                "running shoes", "a winter jacket", "the gaming mouse", "this lamp", "a yoga mat",
                "the leather wallet", "kids' backpack", "a smart watch", "that t-shirt"],
    "order": ["#48213", "order 99310", "my order from monday", "order no. 5512", "the parcel",
              "my package", "order A-7731", "what I bought last week"],
    "size": ["size M", "an XL", "size 42", "a small", "size 10", "large"],
    "color": ["black", "red", "navy", "white", "green"],
    "amount": ["$50", "200 dollars", "€75", "1500", "£20", "$3,000", "90 euros"],
    "person": ["my mom", "John", "my landlord", "a friend", "my sister", "Anna", "my business partner"],
    "card": ["my visa", "the debit card", "my credit card", "the card ending 4421", "my mastercard"],
    "city": ["Paris", "Tokyo", "New York", "Berlin", "Lisbon", "Istanbul", "Toronto", "Bali",
             "Rome", "Dubai"],
    "day": ["tomorrow", "next friday", "on the 12th", "this weekend", "in two weeks",
            "on monday", "march 3rd", "tonight"],
    "number": ["2", "three", "4", "one", "5"],
    "topic": ["cats", "the moon", "jazz", "volcanoes", "chess", "bees", "pyramids", "sharks"],
    "team": ["the Lakers", "Real Madrid", "the Yankees", "Arsenal", "the Bulls"],
    "food": ["lasagna", "pancakes", "sushi", "banana bread", "chili", "a risotto"],
}

INTENTS: dict[str, dict[str, list[str]]] = {
    "shop": {
        "order_status": [
            "where is {order}", "track {order}", "has {order} shipped yet",
            "any update on {order}", "when will {order} arrive", "what's the status of {order}",
            "{order} still hasn't come", "is {order} on its way", "delivery status for {order}",
            "i'm waiting for {order}, where is it", "can I get a tracking number for {order}",
            "how far away is my delivery",
        ],
        "cancel_order": [
            "cancel {order}", "I want to cancel {order}", "please stop {order}, I changed my mind",
            "can I still cancel my purchase", "don't send {order}", "undo my last order",
            "I no longer want {order}", "how do I cancel an order", "call off {order} please",
            "scrap the order I just placed", "cancel the purchase of {product}",
            "is it too late to cancel",
        ],
        "return_item": [
            "I want to return {product}", "how do returns work", "{product} doesn't fit, can I send it back",
            "start a return for {order}", "send back {product}", "return policy?",
            "can I return {product} after 30 days", "I need a return label",
            "where do I ship items I'm returning", "{product} arrived broken, I want to return it",
            "can I bring {product} back to a store", "how many days do I have to return stuff",
        ],
        "refund_status": [
            "where is my refund", "I haven't got my money back for {product}",
            "when will I be refunded", "refund for {order} still missing",
            "how long do refunds take", "did you process my refund",
            "you owe me {amount} for the returned item", "has my refund gone through",
            "refund not received yet", "status of the refund for {product}",
            "when does the money come back to {card}", "it's been weeks and no refund",
        ],
        "product_availability": [
            "is {product} in stock", "do you have {product} in {size}", "when will {product} be back",
            "is {product} available in {color}", "any {product} left", "{product} sold out?",
            "can I still buy {product}", "do you carry {product}", "restock date for {product}",
            "is there {product} in {color} {size}", "got {product} in {size}?",
            "will you get more {product}",
        ],
        "price_check": [
            "how much is {product}", "price of {product}", "what does {product} cost",
            "is {product} on sale", "how expensive is {product}", "what's the cheapest {product}",
            "{product} price please", "does {product} cost more in {color}",
            "cost of {number} {product}", "is there a discount on {product}",
            "what do you charge for {product}", "how much would {product} be in {size}",
        ],
        "shipping_options": [
            "do you ship to {city}", "how much is shipping", "is there express delivery",
            "shipping cost to {city}", "can I get it by {day}", "do you offer free shipping",
            "what couriers do you use", "international delivery available?",
            "how long does shipping to {city} take", "can I pick it up instead of delivery",
            "is next day delivery possible", "minimum order for free delivery",
        ],
        "change_address": [
            "change the delivery address for {order}", "I moved, update my address",
            "ship {order} to a different address", "wrong address on {order}",
            "can I redirect my package", "update shipping address",
            "send it to my office instead", "I typed my street wrong",
            "new address for {order} please", "deliver {order} to {person} instead",
            "can you fix the zip code on my order", "change where {order} goes",
        ],
        "payment_methods": [
            "can I pay with paypal", "do you take {card}", "what payment methods do you accept",
            "is cash on delivery possible", "can I pay in installments", "do you accept crypto",
            "apple pay supported?", "can I split the payment", "payment options please",
            "my card was declined, what else can I use", "can I pay by bank transfer",
            "do you accept gift cards",
        ],
        "discount_code": [
            "my promo code doesn't work", "do you have a coupon", "any discount codes",
            "where do I enter a voucher", "code SAVE10 is invalid", "is there a student discount",
            "first order discount?", "the coupon won't apply to {product}",
            "can I use two promo codes", "got a discount for me", "promo code expired?",
            "how do I redeem my voucher",
        ],
        "size_guide": [
            "what size should I get", "does {product} run small", "size chart for {product}",
            "I'm usually {size}, which size fits", "how does {product} fit",
            "are your sizes european or us", "is {size} too big for me",
            "measurements for {product} in {size}", "help me pick a size",
            "sizing guide please", "does {product} fit true to size",
            "what's the difference between M and L",
        ],
        "product_recommendation": [
            "what would you recommend for {person}", "suggest a gift under {amount}",
            "what's your best selling {product}", "help me choose {product}",
            "what goes well with {product}", "any recommendations for running",
            "what should I buy for {person}'s birthday", "which is better, {product} or {product}",
            "show me something similar to {product}", "popular items right now?",
            "I need ideas for a present", "what's trending this season",
        ],
        "complaint": [
            "{product} is terrible quality", "I'm very unhappy with {order}",
            "this is the worst service ever", "{product} broke after one day",
            "I want to file a complaint", "you sent me the wrong item",
            "your courier was rude", "absolutely disappointed with {product}",
            "the package was damaged", "I'm fed up with your store",
            "nothing works on your site", "item looks nothing like the photos",
        ],
        "human_agent": [
            "let me talk to a human", "I want a real person", "connect me to support",
            "can I speak with an agent", "operator please", "get me a manager",
            "is there a human I can chat with", "stop the bot, I need a person",
            "transfer me to customer service", "I need to talk to someone real",
            "call me back please", "live agent",
        ],
        "store_hours": [
            "what time do you open", "are you open on sunday", "store hours in {city}",
            "when does the shop close", "opening hours {day}", "are you open now",
            "holiday hours?", "is the {city} store open late", "what are your hours",
            "until when are you open {day}", "do you close for lunch",
            "what time does support work",
        ],
    },
    "bank": {
        "check_balance": [
            "what's my balance", "how much money do I have", "show me my account balance",
            "balance on {card}", "how much is left in savings", "current balance please",
            "do I have {amount} available", "check my checking account",
            "tell me how much is in my account", "what's left on my account",
            "can I see my funds", "account total?",
        ],
        "transfer_money": [
            "send {amount} to {person}", "transfer {amount} to savings", "I need to wire money",
            "move {amount} between my accounts", "pay {person} {amount}",
            "how do I make a transfer", "send money abroad", "make a bank transfer to {person}",
            "wire {amount} to {city}", "transfer funds to {person}'s account",
            "can I send money to another bank", "set up a payment to {person}",
        ],
        "lost_card": [
            "I lost {card}", "my card was stolen", "block {card} now", "freeze my card please",
            "someone took my wallet with {card}", "can't find {card} anywhere",
            "report a lost card", "my card is missing", "deactivate {card}",
            "I think I left my card in {city}", "stolen card, help",
            "lock my card immediately",
        ],
        "card_declined": [
            "why was {card} declined", "my payment didn't go through", "card rejected at the store",
            "{card} isn't working", "transaction declined for no reason",
            "my card keeps getting refused", "couldn't pay with {card} in {city}",
            "why can't I use my card online", "payment failed with {card}",
            "declined at the atm", "card stopped working today",
            "my purchase of {amount} was denied",
        ],
        "transactions": [
            "show my recent transactions", "what did I spend last week", "list my payments",
            "transaction history for {card}", "did the {amount} payment go out",
            "what was that charge of {amount}", "show me my spending", "last 5 purchases",
            "download my statement", "which payments are pending",
            "I see a strange charge", "history of my account",
        ],
        "interest_rate": [
            "what's the interest rate on savings", "current mortgage rates",
            "how much interest do I earn", "apr on {card}", "loan interest rate please",
            "rates for a 5 year deposit", "is the savings rate going up",
            "what interest will I pay on {amount}", "compare your interest rates",
            "fixed or variable rate?", "how is interest calculated",
            "best rate you offer",
        ],
        "loan_application": [
            "I want to apply for a loan", "can I borrow {amount}", "how do I get a personal loan",
            "loan for a car", "am I eligible for a mortgage", "apply for credit",
            "I need {amount} for home repairs", "start a loan application",
            "what do I need to get a loan", "can I get a loan with bad credit",
            "student loan options", "borrow money for {number} years",
        ],
        "open_account": [
            "open a new account", "I want a savings account", "how do I sign up",
            "can I open an account online", "create a joint account with {person}",
            "account for my kid", "what documents do I need to open an account",
            "start a business account", "become a customer", "new checking account please",
            "register with your bank", "open a second account",
        ],
        "pin_change": [
            "change my pin", "I forgot my pin", "reset the pin on {card}",
            "how do I set a new pin", "pin locked after wrong tries", "new pin please",
            "what's my pin code", "unlock my pin", "update pin for {card}",
            "I entered the pin wrong 3 times", "can I pick my own pin",
            "pin reminder",
        ],
        "exchange_rate": [
            "what's the exchange rate for euros", "how many dollars is {amount}",
            "convert {amount} to yen", "usd to gbp rate", "exchange rate today",
            "how much is the euro worth", "currency conversion fees",
            "rate for changing money in {city}", "dollar to peso",
            "what will I get for {amount} in pounds", "currency rates please",
            "best time to exchange money",
        ],
        "direct_debit": [
            "set up a direct debit", "cancel a standing order", "stop the monthly payment to {person}",
            "change my direct debit date", "recurring payments list", "automatic payment setup",
            "remove a subscription payment", "when does my direct debit go out",
            "pay my bills automatically", "edit standing order to {person}",
            "standing order for {amount} every month", "cancel autopay",
        ],
        "fraud_report": [
            "I see charges I didn't make", "someone hacked my account", "report fraud",
            "unauthorized transaction of {amount}", "I got a phishing text from you",
            "suspicious activity on {card}", "was this email really from the bank",
            "money disappeared from my account", "identity theft",
            "a scammer called me pretending to be you", "dispute a charge",
            "I think my account is compromised",
        ],
        "bank_fees": [
            "why was I charged a fee", "what are your fees", "monthly account fee?",
            "atm withdrawal fees abroad", "refund the overdraft fee", "how much does a transfer cost",
            "fee for {card}", "hidden charges on my statement", "is there a fee to close the account",
            "why {amount} in fees", "foreign transaction fee", "any charges for paper statements",
        ],
        "branch_location": [
            "nearest branch", "where is your office in {city}", "find an atm near me",
            "branch address please", "is there a bank in {city}", "closest atm",
            "where can I deposit cash", "locations of your branches", "branch near the station",
            "do you have an office downtown", "where to find you in {city}",
            "map of atms",
        ],
        "update_details": [
            "change my phone number", "update my email", "I got married, change my name",
            "new address for my account", "edit my personal details", "update contact info",
            "wrong birth date on my profile", "how do I change my password",
            "my phone changed", "correct the spelling of my name",
            "change the email on file", "update my profile",
        ],
    },
    "travel": {
        "book_flight": [
            "book a flight to {city}", "I need a plane ticket to {city} {day}",
            "flights from {city} to {city}", "find me a cheap flight", "fly to {city} {day}",
            "one way ticket to {city}", "return flight to {city} for {number} people",
            "are there direct flights to {city}", "get me on a plane to {city}",
            "search flights {day}", "business class to {city}",
            "book airfare for {person}",
        ],
        "book_hotel": [
            "book a hotel in {city}", "I need a room for {number} nights",
            "hotels near the center of {city}", "find accommodation in {city} {day}",
            "reserve a double room", "cheap hostel in {city}", "room with a sea view",
            "where can I stay in {city}", "hotel for {person} and me",
            "book somewhere to sleep {day}", "any rooms available {day}",
            "5 star hotel in {city}",
        ],
        "cancel_booking": [
            "cancel my reservation", "I can't travel anymore, cancel everything",
            "cancel the hotel in {city}", "drop my flight booking", "how do I cancel my trip",
            "free cancellation?", "cancel booking for {person}", "refund my cancelled flight",
            "I need to call off my trip to {city}", "cancel {day}'s room",
            "undo my booking", "can I cancel without a fee",
        ],
        "change_booking": [
            "change my flight to {day}", "move my hotel dates", "switch to a later flight",
            "can I rebook", "modify my reservation", "add a night to my stay",
            "change the passenger name", "upgrade my seat", "swap my return date",
            "postpone my trip to {city}", "can I change the room type",
            "reschedule my booking",
        ],
        "baggage": [
            "how many bags can I bring", "baggage allowance", "can I take a carry on",
            "extra luggage fee", "my suitcase is lost", "weight limit for checked bags",
            "can I bring my bike", "lost luggage in {city}", "add a bag to my booking",
            "liquids in hand luggage?", "my bag was damaged on the flight",
            "oversized luggage rules",
        ],
        "flight_status": [
            "is my flight on time", "flight delayed?", "status of my flight to {city}",
            "did my flight land", "what gate do I go to", "departure time of my flight",
            "is the flight to {city} cancelled", "when does boarding start",
            "arrival time for the flight from {city}", "is there a delay {day}",
            "track flight from {city}", "has my plane left",
        ],
        "visa_requirements": [
            "do I need a visa for {city}", "visa rules for travelling to {city}",
            "how long does a visa take", "entry requirements for {city}",
            "can I travel with an id card", "passport validity needed",
            "visa on arrival in {city}?", "what documents to enter the country",
            "transit visa needed?", "do kids need a passport",
            "is a tourist visa required", "travel documents for {person}",
        ],
        "car_rental": [
            "rent a car in {city}", "I need a car {day}", "car hire prices",
            "can I pick up a rental at the airport", "book a suv for {number} days",
            "cheap car rental", "rental car with automatic gearbox", "one way car rental",
            "do I need an international license to rent", "hire a van",
            "car for {number} people", "return the car in another city",
        ],
        "travel_insurance": [
            "do I need travel insurance", "buy insurance for my trip", "what does the insurance cover",
            "medical cover abroad", "insurance for skiing", "claim on my travel insurance",
            "is cancellation covered", "insurance for {person}", "price of trip insurance",
            "does insurance cover lost bags", "add insurance to booking",
            "annual travel cover",
        ],
        "things_to_do": [
            "what to do in {city}", "best sights in {city}", "things to see {day} in {city}",
            "tours in {city}", "what's fun in {city} for kids", "must see places in {city}",
            "museums in {city}", "recommend activities in {city}", "nightlife in {city}",
            "day trips from {city}", "where to go in {city}",
            "top attractions please",
        ],
        "weather_destination": [
            "what's the weather in {city} {day}", "will it rain in {city}",
            "how hot is {city} in summer", "best season to visit {city}",
            "temperature in {city}", "is it cold in {city} in december",
            "forecast for my trip", "do I need an umbrella in {city}",
            "is it sunny in {city} now", "rainy season in {city}?",
            "climate of {city}", "will it snow {day}",
        ],
        "check_in": [
            "how do I check in online", "when does check in open", "check in for my flight",
            "boarding pass please", "can I check in at the airport", "online check in not working",
            "what time is hotel check in", "early check in possible?",
            "late check in at the hotel", "check in for {person}",
            "print boarding pass", "mobile boarding pass",
        ],
        "loyalty_points": [
            "how many miles do I have", "use my points for a flight", "loyalty program",
            "my miles weren't credited", "points balance", "upgrade with miles",
            "do points expire", "join the frequent flyer club", "transfer points to {person}",
            "what can I redeem points for", "status level benefits",
            "missing points from my trip to {city}",
        ],
        "special_assistance": [
            "I need a wheelchair at the airport", "travelling with a baby", "special meal request",
            "assistance for an elderly passenger", "can I bring my service dog",
            "flying while pregnant", "unaccompanied minor", "help with mobility at the gate",
            "vegetarian meal on the flight", "seat next to {person} please",
            "allergy on board", "medical equipment on the plane",
        ],
        "travel_deals": [
            "any deals to {city}", "last minute offers", "cheap holidays", "package deals",
            "discounts for students", "weekend getaway offers", "sale on flights",
            "all inclusive deals", "best price trips {day}", "promo for families",
            "budget trip ideas", "cheapest destination this month",
        ],
    },
}

OUT_OF_SCOPE: list[str] = [
    "tell me a joke", "what is the meaning of life", "who won the game last night",
    "how tall is mount everest", "what's 15 times 23", "write me a poem about {topic}",
    "recipe for {food}", "how do I cook {food}", "who is the president of france",
    "what's your favorite color", "do you dream", "play some music", "set an alarm for 7",
    "remind me to call {person}", "how many legs does a spider have", "fun fact about {topic}",
    "translate hello into german", "what's the capital of australia", "when was rome founded",
    "how do I fix a leaky faucet", "best way to learn guitar", "are you a robot",
    "how old is the universe", "score of {team}", "when do {team} play next",
    "how do magnets work", "what should I name my dog", "is coffee bad for you",
    "how to lose weight fast", "help me with my math homework", "what rhymes with orange",
    "how far is the moon", "why is the sky blue", "teach me to juggle",
    "what time is it in tokyo", "give me a riddle", "what movies are playing",
    "how many calories in {food}", "who invented the telephone", "how do plants grow",
    "can you sing", "what's the speed of light", "how to tie a tie", "suggest a book about {topic}",
    "do you like {topic}", "what's trending on tiktok", "how to meditate",
    "who wrote hamlet", "tell me about {topic}", "what do {topic} eat",
    "how do I change a tire", "my wifi is slow", "how to unclog a drain",
    "what's the best pizza topping", "how many ounces in a cup", "who sings this song",
    "how do airplanes fly", "is it going to be a full moon", "roll a dice",
    "flip a coin", "what's a good workout routine", "how to make friends",
    "define serendipity", "spell necessary", "synonym for happy",
    "how many people live on earth", "what language do they speak in brazil",
    "how does bitcoin mining work", "best video game of all time", "how to draw a cat",
    "what is photosynthesis", "I'm bored", "sing happy birthday", "knock knock",
    "what's your name", "how are you feeling today", "who made you",
    "how to grow tomatoes", "what is quantum physics", "when is the next eclipse",
    "who is the richest person", "how to write a resume", "what's on tv tonight",
    "how deep is the ocean", "what do you think about {topic}", "how do vaccines work",
    "how to get rid of hiccups", "what is the tallest building", "how to train a puppy",
    "who painted the mona lisa", "what's the square root of 144", "how many bones in the body",
    "why do cats purr", "is a tomato a fruit", "what is love", "how to start a podcast",
    "what are black holes", "how to clean a cast iron pan", "tips for better sleep",
    "how to say thank you in japanese", "who discovered penicillin", "how does the stock market work",
    "can dogs eat chocolate", "what's the longest river", "how to play chess",
    "what happened in 1969", "give me a motivational quote", "how to fold a paper plane",
    "what's the best programming language", "how to make slime", "who is the best footballer",
    "how many planets are there", "what do bees do in winter", "is pluto a planet",
    "how to brew beer at home", "what's the boiling point of water", "how do I knit a scarf",
    "explain gravity", "what's a haiku", "how to whistle", "count to ten in spanish",
    "how many hours in a year", "what's the weather like on mars",
    "how long do {topic} live", "recommend a podcast", "what's the best pet for kids",
]

_PREFIXES = ["", "", "", "", "hi ", "hello, ", "hey ", "excuse me, ", "quick question: ",
             "um ", "please ", "ok so ", "good morning, ", "sorry, "]
_SUFFIXES = ["", "", "", "", "?", "!", " please", " thanks", " thx", "??", " pls",
             " asap", " 🙏", " :)", " ...", " right now"]


@dataclass(frozen=True)
class Corpus:
    train: list[tuple[str, str]]
    #: New renderings of the training phrasings (other slot values, greetings and typing
    #: errors; none identical to a training text) plus out-of-scope queries of their own.
    val: list[tuple[str, str]]
    #: Like ``val``, drawn separately: messages worded the way the training data words
    #: them, with out-of-scope topics seen in neither training nor validation.
    test: list[tuple[str, str]]
    #: Phrasings the training data never used (a quarter of each intent's phrasings),
    #: with the same out-of-scope queries as ``test``: a paraphrase stress test.
    test_unseen: list[tuple[str, str]]
    intents: list[str]


def _fill(template: str, rng: random.Random) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(SLOTS[m.group(1)]), template)


def _typo(text: str, rng: random.Random) -> str:
    positions = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(positions) < 4:
        return text
    i = rng.choice(positions[1:-1])
    kind = rng.randrange(3)
    if kind == 0:      # swap two neighbours
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == 1:      # drop a letter
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]    # double a letter


def _render(template: str, rng: random.Random, noise: float) -> str:
    text = rng.choice(_PREFIXES) + _fill(template, rng) + rng.choice(_SUFFIXES)
    if rng.random() < noise:
        text = _typo(text, rng)
    roll = rng.random()
    if roll < 0.15:
        text = text.lower()
    elif roll < 0.2:
        text = text.upper()
    elif roll < 0.5:
        text = text[:1].upper() + text[1:]
    return text


def _split(items: Sequence[str], shares: Sequence[float], rng: random.Random) -> list[list[str]]:
    items = list(items)
    rng.shuffle(items)
    cuts, total, out = [], 0.0, []
    for share in shares[:-1]:
        total += share
        cuts.append(round(total * len(items)))
    start = 0
    for cut in [*cuts, len(items)]:
        out.append(items[start:cut])
        start = cut
    return out


def _sample(templates: Sequence[str], n: int, label: str, rng: random.Random,
            noise: float) -> list[tuple[str, str]]:
    return [(_render(templates[i % len(templates)], rng, noise), label) for i in range(n)]


def _new_texts(templates: Sequence[str], n: int, label: str, rng: random.Random,
                  noise: float, train: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    known = {text.lower() for text, lab in train if lab == label}
    out: list[tuple[str, str]] = []
    for _ in range(n * 50):
        if len(out) == n:
            break
        text = _render(rng.choice(templates), rng, noise)
        if text.lower() not in known:
            known.add(text.lower())
            out.append((text, label))
    return out


def make_corpus(domains: Iterable[str] = ("shop", "bank", "travel"), *,
                train_per_intent: int = 100, val_per_intent: int = 20,
                test_per_intent: int = 30, oos_train: int = 100, oos_val: int = 100,
                oos_test: int = 500, noise: float = 0.15, seed: int = 0) -> Corpus:
    """Build the corpus. Three quarters of each intent's phrasings feed training,
    validation and ``test``; the other quarter only ``test_unseen``. Out-of-scope
    phrasings are split 30/20/50 between training, validation and both test sets.
    ``oos_train=0`` gives a training set without out-of-scope examples."""
    rng = random.Random(seed)
    train: list[tuple[str, str]] = []
    val: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    unseen: list[tuple[str, str]] = []
    names: list[str] = []
    for domain in domains:
        if domain not in INTENTS:
            raise ValueError(f"unknown domain {domain!r}; choose from {sorted(INTENTS)}")
        for intent, templates in INTENTS[domain].items():
            names.append(intent)
            seen, held = _split(templates, (0.75, 0.25), rng)
            train += _sample(seen, train_per_intent, intent, rng, noise)
            val += _new_texts(seen, val_per_intent, intent, rng, noise, train)
            test += _new_texts(seen, test_per_intent, intent, rng, noise, train + val)
            unseen += _sample(held, test_per_intent, intent, rng, noise)
    tr, va, te = _split(OUT_OF_SCOPE, (0.3, 0.2, 0.5), rng)
    train += _sample(tr, oos_train, UNKNOWN, rng, noise)
    val += _sample(va, oos_val, UNKNOWN, rng, noise)
    oos = _sample(te, oos_test, UNKNOWN, rng, noise)
    rng.shuffle(train)
    return Corpus(train, val, test + oos, unseen + oos, names)
