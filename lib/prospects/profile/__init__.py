"""Exploratory profile of the bronze users: EDA tables, figures and a Markdown report."""
