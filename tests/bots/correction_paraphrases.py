"""A small labelled set to calibrate bots.correction_selectors.MATCH_SIMILARITY: each correction's
question, paraphrases a visitor could write (should match), and near misses about the same
product that ask something else (must not match)."""

from __future__ import annotations

# (correction question, [paraphrases], [near misses])
CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "How do I get a refund?",
        ["Can I get my money back?", "how can I request a refund", "I want a refund, what do I do?"],
        ["How long does shipping take?", "Do you ship internationally?", "What payment methods do you accept?"],
    ),
    (
        "How do I reset my password?",
        ["I forgot my password", "how can I change my password if I can't log in", "password reset help"],
        ["How do I delete my account?", "Can I change my email address?", "Why was I logged out?"],
    ),
    (
        "What are your opening hours?",
        ["When are you open?", "what time does the store open", "opening times please"],
        ["Where is your store located?", "Do you have parking?", "Can I book an appointment?"],
    ),
    (
        "Do you offer a free trial?",
        ["Is there a free trial?", "can I try it for free before paying", "free trial available?"],
        ["How much does the pro plan cost?", "Can I pay yearly?", "Do you offer discounts for students?"],
    ),
    (
        "How do I cancel my subscription?",
        ["how can I cancel my plan", "I want to stop my subscription", "cancel subscription"],
        ["How do I upgrade my plan?", "When will I be charged?", "Can I pause my account?"],
    ),
    (
        "Which languages does the widget support?",
        [
            "what languages can the chat widget speak",
            "is the widget available in other languages",
            "widget language support",
        ],
        ["How do I change the widget colour?", "How do I install the widget?", "Can I hide the widget on mobile?"],
    ),
    (
        "Can I export my data?",
        ["how do I download all my data", "is there a way to export my data", "data export"],
        ["Where is my data stored?", "Is my data encrypted?", "How do I import contacts?"],
    ),
    (
        "What is the warranty period?",
        ["how long is the warranty", "how many years of warranty do I get", "warranty duration?"],
        ["How do I return a broken item?", "Do you repair devices?", "Where can I find the user manual?"],
    ),
    (
        "How do I contact customer support?",
        ["how can I reach your support team", "I need to talk to support", "customer service contact"],
        ["What is your company address?", "Are you hiring?", "Who founded the company?"],
    ),
    (
        "Do you deliver on weekends?",
        ["is there delivery on saturday and sunday", "weekend delivery?", "can you deliver on a Sunday"],
        ["How much is delivery?", "Can I track my order?", "What if I am not home for the delivery?"],
    ),
    (
        "How many users can I add to my team?",
        ["what is the maximum number of team members", "how many seats does my team get", "limit on users in a team"],
        ["How do I remove a user from my team?", "Can I change a member's role?", "How do I rename my team?"],
    ),
    (
        "Is there a mobile app?",
        [
            "do you have an app for iphone or android",
            "mobile application available?",
            "can I use it on my phone with an app",
        ],
        ["Does the website work on tablets?", "How do I enable notifications?", "Is there a desktop app for Windows?"],
    ),
]
