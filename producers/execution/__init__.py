"""Execution of GUI actions with pyautogui (bounds checks, failsafe, rate limit)."""
