#!/usr/bin/env python3
"""Writes data/products.json: a deterministic sample catalog of realistic products.

Prices are exact decimals (written as JSON numbers with their trailing zeros), items
have nested attributes, lists and unicode names, and a few ids exercise the characters
the API must round-trip (spaces, '+', '%', '*', unicode, emoji).
Run: python3 scripts/gen_sample_catalog.py > data/products.json
"""
import json
import random
from decimal import Decimal

rng = random.Random(20261122)

CATEGORIES = {
    "kitchen": (["Chef's Knife", "Cast-Iron Skillet", "Pour-Over Kettle", "Espresso Grinder", "Bamboo Cutting Board", "Stand Mixer", "Dutch Oven", "Santoku Knife"], ["Hōchō", "Lodge & Co", "Fellow", "Baratza", "Le Creuset"]),
    "outdoor": (["Trail Backpack 30L", "Down Sleeping Bag", "Titanium Spork", "Trekking Poles", "Headlamp 400lm", "Ultralight Tent", "Camp Stove"], ["Fjällräven", "Osprey", "Black Diamond", "MSR", "Nordisk"]),
    "electronics": (["Noise-Cancelling Headphones", "Mechanical Keyboard", "USB-C Dock", "4K Monitor 27\"", "Wireless Mouse", "Portable SSD 1TB", "Smart Speaker"], ["Sennheiser", "Keychron", "CalDigit", "Dell", "Logitech", "Samsung"]),
    "apparel": (["Merino T-Shirt", "Rain Shell Jacket", "Wool Socks (3-pack)", "Chino Trousers", "Fleece Hoodie", "Linen Shirt"], ["Icebreaker", "Arc'teryx", "Darn Tough", "Uniqlo", "Patagonia"]),
    "books": (["Designing Data-Intensive Applications", "The Rust Programming Language", "Crème Brûlée: A History", "Σύντομη Ιστορία του Χρόνου", "東京の喫茶店", "Cien años de soledad"], ["O'Reilly", "No Starch Press", "Éditions Gallimard", "Penguin"]),
    "home": (["Linen Duvet Cover", "Ceramic Vase", "Reading Lamp", "Wool Throw Blanket", "Scented Candle — Cedar", "Plant Pot Ø20cm"], ["HAY", "Muuto", "IKEA", "Ferm Living"]),
}
COLORS = ["black", "white", "sand", "olive", "navy", "terracotta", "graphite", "żółty"]


def price(lo, hi):
    cents = rng.randint(lo * 100, hi * 100)
    # Most prices end in .99 or .00 so trailing zeros get exercised.
    cents = cents - cents % 100 + rng.choice([99, 0, 50, 95])
    return Decimal(cents) / Decimal(100)


def product(n, category):
    names, brands = CATEGORIES[category]
    name = rng.choice(names)
    brand = rng.choice(brands)
    width, height = rng.randint(5, 120), rng.randint(2, 80)
    item = {
        "productId": f"P-{10000 + n}",
        "name": f"{brand} {name}",
        "brand": brand,
        "category": category,
        "description": f"{name} by {brand}. Ships in recyclable packaging.",
        "price": price(5, 900),
        "currency": "EUR",
        "stock": rng.randint(0, 500),
        "rating": Decimal(rng.randint(30, 50)) / Decimal(10),
        "active": rng.random() > 0.05,
        "discontinuedAt": None,
        "tags": sorted(rng.sample(["new", "sale", "eco", "bestseller", "gift", "limited", "refurbished"], rng.randint(0, 3))),
        "attributes": {
            "color": rng.choice(COLORS),
            "dimensionsCm": {"width": width, "height": height, "depth": Decimal(rng.randint(10, 900)) / Decimal(10)},
            "weightKg": Decimal(rng.randint(50, 25000)) / Decimal(1000),
            "materials": rng.sample(["steel", "oak", "cotton", "wool", "recycled polyester", "ceramic", "aluminium"], 2),
        },
        "variants": [
            {"sku": f"P-{10000 + n}-{size}", "size": size, "priceDelta": Decimal(rng.choice([0, 0, 250, 500])) / Decimal(100)}
            for size in rng.sample(["S", "M", "L", "XL"], rng.randint(1, 3))
        ],
        "createdAt": f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
    }
    return item


def to_json(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def main():
    categories = list(CATEGORIES)
    items = [product(n, categories[n % len(categories)]) for n in range(1, 241)]
    specials = [
        ("café ☕ grinder", "Café ☕ Hand Grinder"),
        ("🦀-plush", "Ferris the Crab 🦀 Plush"),
        ("gift card", "Gift Card (any amount)"),
        ("A+B*C", "Combo A+B*C Bundle"),
        ("100%-cotton", "100% Cotton Tote"),
        ("東京-mug", "東京 Mug"),
    ]
    for n, (pid, name) in enumerate(specials, start=241):
        item = product(n, "home")
        item["productId"] = pid
        item["name"] = name
        items.append(item)
    # A price with more digits than any float holds.
    items[0]["price"] = Decimal("12345678901234567890.123456789")
    items[0]["name"] = "Collector's Edition Watch (priced by the digit)"
    items[0]["description"] = "A watch whose price needs more digits than a float holds."
    print("[\n" + ",\n".join(to_json(i) for i in items) + "\n]")


if __name__ == "__main__":
    main()
