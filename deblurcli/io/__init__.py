"""Reading and writing photographs, and turning command-line inputs into work items."""
