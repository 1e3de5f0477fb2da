"""Date formats of the admin's own columns and read-only fields: the project's one format (core.instants).

Django reads these instead of its English defaults ("March 1, 2026, 2:05 p.m.") because settings name this
package in ``FORMAT_MODULE_PATH``; input formats are Django's English ones.
"""

from core.instants import DAY_FORMAT, INSTANT_FORMAT

DATE_FORMAT = DAY_FORMAT
DATETIME_FORMAT = INSTANT_FORMAT
SHORT_DATE_FORMAT = DAY_FORMAT
SHORT_DATETIME_FORMAT = INSTANT_FORMAT
MONTH_DAY_FORMAT = "j M"
YEAR_MONTH_FORMAT = "M Y"
