"""Web interface: FastAPI routes, server-rendered Jinja2 pages in Khmer and English."""
