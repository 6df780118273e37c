"""`bkf`: the farm's operator command (status, wake, builder create, summary, insights).

Installed as a console script by `pip install` of the project; `python -m bkf` runs it too.
"""
