"""The capacity broker: observe → decide → act (seed §7.1, BCS 1–5)."""
