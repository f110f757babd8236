"""Plausible words for labels, captions, options and headings (no I/O)."""

from __future__ import annotations

import random

FIELDS = ["Name", "First name", "Last name", "Email", "Phone", "Address", "City", "Zip code",
          "Country", "Company", "Username", "Host", "Port", "Database", "Timeout", "Path",
          "Proxy", "Server", "Title", "Subject", "Search", "Amount", "Quantity", "Price",
          "Account", "Reference", "Street", "Region", "Notes", "Website", "Tag", "Owner"]
BUTTONS = ["OK", "Cancel", "Apply", "Save", "Open", "Close", "Delete", "Remove", "Add",
           "Edit", "Next", "Back", "Finish", "Help", "Print", "Export", "Import", "Refresh",
           "Search", "Reset", "Submit", "Connect", "Browse", "Upload", "Send", "Copy",
           "Paste", "Undo", "Redo", "Run", "Stop", "Start", "Preview", "Settings", "Login",
           "Sign up", "Save as", "Load file", "New item", "Check now", "Update"]
CHECKS = ["Remember me", "Enable logging", "Show hidden files", "Auto save",
          "Send reports", "Use proxy", "Dark mode", "Notify me", "Keep backups",
          "Start minimized", "Check spelling", "Wrap lines", "Show toolbar", "Sync now",
          "Compress data", "Verbose output", "Accept terms", "Subscribe to news",
          "Allow cookies", "Open at login", "Play sounds", "Lock layout"]
RADIOS = ["Small", "Medium", "Large", "Daily", "Weekly", "Monthly", "Never", "Always",
          "Manual", "Automatic", "Low", "High", "Normal", "Fast", "Slow", "Left", "Right",
          "Center", "Portrait", "Landscape", "Yes", "No", "Ask first"]
OPTIONS = ["English", "German", "French", "Spanish", "Blue", "Green", "Red", "UTF-8",
           "Default", "Custom", "Standard", "Express", "Metric", "Imperial"]
HEADINGS = ["Settings", "Preferences", "Connection", "Account details", "New order",
            "Shipping", "Options", "Profile", "Network", "Display", "Privacy", "Advanced",
            "General", "Security", "Notifications", "Payment", "Export data", "Search files"]
MENUS = ["File", "Edit", "View", "Tools", "Window", "Help", "Insert", "Format", "Go",
         "Run", "Project", "Options"]
TABS = ["General", "Advanced", "Network", "Display", "Sound", "Privacy", "Accounts",
        "Updates", "Storage", "Details", "Summary", "History"]
LINKS = ["Forgot password", "Learn more", "Terms of use", "Privacy policy", "Contact us",
         "More options", "Show details", "Read the docs", "Sign in instead", "Skip"]
VALUES = ["Alice", "Bob Smith", "example.org", "8080", "42", "Main Street", "Berlin",
          "reports", "alpha", "2024", "blue", "ops team"]


def pick(rng: random.Random, words: list[str], n: int) -> list[str]:
    """n distinct words (repeats only when asked for more than there are)."""
    if n <= len(words):
        return rng.sample(words, n)
    return [rng.choice(words) for _ in range(n)]
