"""Insights: the daily rollups (rollups.py) that the overview reads (selectors.py), the
conversations explorer's filters and streamed export (explorer.py), and the overview's SVG charts
(charts.py)."""
