"""Every admin page of the demo, read as each role reads it.

The demo (``backoffice.demo``, one customer per plan family) is loaded in the test database; then, for each role
(Finance admin, Finance viewer, Support), the walk opens the dashboard and, for every model registered in the
admin, its list, its add page and the change, history and delete pages of a few of its rows; it follows the
admin links these pages show (a few pages of each kind); it opens the confirmation page of every action the
role is offered, then confirms each action (filling what a person would) and reads the messages it leaves.

On every page, what a person reads (the text, and what editable fields hold) follows the one display rule for
numbers (``core.money``): never an exponent (``0E-12``, ``2E+1%``), never the stored zeros of a column
(``2000.000000000000``, ``121.8000 USD``). Money shows its currency's minor unit (``$121.80``), credits and
quantities no trailing zeros. A page the role may not open is the admin's own styled page, never a bare 403.
The invoice document (the PDF's HTML) is read too.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import connection
from django.urls import NoReverseMatch, reverse

from backoffice.demo import demo_load
from backoffice.roles import FINANCE_ADMIN, FINANCE_VIEWER, SUPPORT, roles_sync
from catalog.models import PlanVersion
from catalog.services import plan_version_draft_from
from invoicing.models import Invoice
from invoicing.pdf import invoice_html
from metering.models import Event

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 4, 15, tzinfo=UTC)

# A number in exponent form: 0E-12, 2E+1, 1.5e-7 (a whole token: not a hex id like "a8e3" or "lk_12e4").
EXPONENT = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])")
# A stored column's zeros: 2000.000000000000 (a run of more than 4 trailing zeros) ...
STORED_ZEROS = re.compile(r"\.\d*0{5,}\b")
# ... and the shorter ones of money columns: 121.8000, 26.0000 USD, 20.0000. The demo bills in USD (2 places) and
# quantities, credits and rates drop their trailing zeros, so three trailing zeros are never right.
MONEY_ZEROS = re.compile(r"\d\.\d*000\b")

PAGES_PER_KIND = 2  # pages of one kind (e.g. /admin/wallets/wallet/N/change/) opened by following links
ROWS_PER_MODEL = 2  # change pages opened per model besides the linked ones (first and last row)
SKIPPED_ACTIONS = {"run_tasks"}  # django-celery-beat's "run now" sends tasks to a worker; nothing to read
UNCONFIRMED_ACTIONS = {"delete_selected"}  # its confirmation page is read; deleting the demo teaches nothing more


def number_problems(text: str) -> list[str]:
    """Each number written for storage rather than for people, with a little context."""
    found = []
    for pattern in (EXPONENT, STORED_ZEROS, MONEY_ZEROS):
        for match in pattern.finditer(text):
            start, end = max(match.start() - 50, 0), match.end() + 30
            found.append(" ".join(text[start:end].split()))
    return found


class PageReader(HTMLParser):
    """What a person reads on a page: its text (not scripts or styles), the values of fields that are shown
    (inputs other than hidden ones, textareas, options), titles and placeholders; and its admin links."""

    SHOWN_INPUTS = {"text", "number", "email", "url", "search", "tel", "date", "datetime-local", "time", "submit"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self.forms: list[dict] = []
        self._hidden = 0
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag in ("script", "style", "template"):
            self._hidden += 1
        for name in ("title", "placeholder", "aria-label"):
            if a.get(name):
                self.parts.append(a[name])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self.forms.append({"method": a.get("method", "get").lower(), "action": a.get("action", ""), "fields": []})
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind in self.SHOWN_INPUTS and a.get("value"):
                self.parts.append(a["value"])
            if self.forms and a.get("name") and kind not in ("submit", "button", "image", "reset"):
                if kind not in ("checkbox", "radio") or "checked" in a:
                    self.forms[-1]["fields"].append([a["name"], a.get("value", ""), kind])
        elif tag == "textarea" and self.forms:
            self._textarea = a.get("name")
            self.forms[-1]["fields"].append([self._textarea, "", "textarea"])
        elif tag == "select" and self.forms:
            self._select = a.get("name")
            self.forms[-1]["fields"].append([self._select, None, "select"])
        elif tag == "option" and self._select is not None and self.forms:
            field = next(f for f in reversed(self.forms[-1]["fields"]) if f[0] == self._select)
            if field[1] is None or "selected" in a:
                field[1] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._hidden:
            self._hidden -= 1
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)
        if self._textarea is not None and self.forms:
            self.forms[-1]["fields"][-1][1] += data

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


def read(html: str) -> PageReader:
    reader = PageReader()
    reader.feed(html)
    reader.close()
    return reader


def is_styled_admin_page(html: str) -> bool:
    """The admin's frame: its stylesheet, the site header and the breadcrumbs or content block."""
    return "admin/css/base.css" in html and 'id="header"' in html and 'id="content"' in html


def page_kind(path: str) -> str:
    return re.sub(r"/\d+/", "/N/", path)


class Walk:
    """One role's walk: pages opened, problems found (number display, bare refusals, broken links)."""

    def __init__(self, client, role: str) -> None:
        self.client = client
        self.role = role
        self.seen: set[str] = set()
        self.kinds: Counter[str] = Counter()
        self.problems: dict[str, str] = {}  # what is wrong -> the first page it was seen on
        self.pages = 0
        self.actions: list[str] = []  # "model.action" for each action confirmed
        self.messages = 0  # admin messages read

    def problem(self, where: str, what: str) -> None:
        self.problems.setdefault(what, where)

    def report(self) -> str:
        return "\n".join(f"{what}    [{where}]" for what, where in list(self.problems.items())[:80])

    def check(self, where: str, response) -> PageReader | None:
        status = response.status_code
        content_type = response.get("Content-Type", "")
        if status == 403:
            if not is_styled_admin_page(response.content.decode()):
                self.problem(where, f"a bare 403 page: {page_kind(urlsplit(response.request['PATH_INFO']).path)}")
            return None
        if status in (301, 302):
            return None
        if status != 200:
            self.problem(where, f"status {status}")
            return None
        if not content_type.startswith("text/html"):
            return None
        self.pages += 1
        html = response.content.decode()
        page = read(html)
        if '<ul class="messagelist">' in html:
            listed = html.split('<ul class="messagelist">', 1)[1].split("</ul>", 1)[0]
            self.messages += len(re.findall(r"<li[^>]*>", listed))
        for found in number_problems(page.text):
            self.problem(where, found)
        return page

    def open(self, path: str, *, linked_from: str | None = None) -> PageReader | None:
        if path in self.seen:
            return None
        self.seen.add(path)
        self.kinds[page_kind(path)] += 1
        response = self.client.get(path)
        where = f"{self.role} GET {path}" + (f" (linked from {linked_from})" if linked_from else "")
        if response.status_code == 404 and linked_from:
            self.problem(where, "a link to a missing page")
            return None
        page = self.check(where, response)
        if page is not None:
            self.follow(page, path)
        return page

    def follow(self, page: PageReader, source: str) -> None:
        for href in page.links:
            parts = urlsplit(href)
            path = parts.path
            if parts.netloc or not path.startswith("/admin/") or path in self.seen:
                continue
            if path.endswith(("/logout/", "/jsi18n/")) or "/autocomplete/" in path:
                continue
            if self.kinds[page_kind(path)] >= PAGES_PER_KIND:
                continue
            self.open(path, linked_from=source)

    def post(self, path: str, data: dict, what: str) -> PageReader | None:
        response = self.client.post(path, data, follow=True)
        return self.check(f"{self.role} POST {path} ({what})", response)


def _form_data(form: dict, fill: dict[str, str]) -> dict[str, list[str]]:
    """The values a browser would send: each field's value, and ``fill`` for the empty ones a person types."""
    data: dict[str, list[str]] = {}
    for name, value, _kind in form["fields"]:
        if not value and name in fill:
            value = fill[name]
        data.setdefault(name, []).append(value or "")
    return data


# What a person types into an action's empty fields: 250 credits, $5 (a credit note), a reason, a reference.
FILL = {
    "credits": "250",
    "amount": "5",
    "reason": "Goodwill after an outage",
    "reference": "Bank transfer 0420",
    "name": "Goodwill",
}


def _admin_paths():
    """Every registered model's list and add page, and the change/history/delete pages of its first and last rows."""
    for model in admin.site._registry:
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        yield reverse(f"{info}_changelist")
        yield reverse(f"{info}_add")
        rows = list(model._default_manager.order_by("pk").values_list("pk", flat=True)[:1]) + list(
            model._default_manager.order_by("-pk").values_list("pk", flat=True)[: ROWS_PER_MODEL - 1]
        )
        for pk in dict.fromkeys(rows):
            for view in ("change", "history", "delete"):
                try:
                    yield reverse(f"{info}_{view}", args=[pk])
                except NoReverseMatch:
                    continue


def _walk_actions(walk: Walk) -> None:
    """Every action offered on every list: its confirmation page, then confirmed, with the messages it leaves."""
    for model in admin.site._registry:
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = walk.client.get(changelist)
        if response.status_code != 200:
            continue
        html = response.content.decode()
        offered = html.split('name="action"', 1)[-1].split("</select>", 1)[0]
        actions = [a for a in re.findall(r'<option value="(\w+)"', offered) if a not in SKIPPED_ACTIONS]
        selected = re.findall(r'<input type="checkbox" name="_selected_action" value="(\d+)"', html)
        if not actions or not selected:
            continue
        for action in actions:
            confirm = None
            for rows in (selected, selected[:1]):  # some actions take one row at a time (a payment, a note)
                asked = {"action": action, "_selected_action": rows, "index": "0"}
                page = walk.post(changelist, asked, f"{action}: confirmation page for {len(rows)} row(s)")
                confirm = page and next(
                    (
                        f
                        for f in page.forms
                        if f["method"] == "post" and any(name == "confirm" for name, *_ in f["fields"])
                    ),
                    None,
                )
                if confirm:
                    break
            if confirm and action not in UNCONFIRMED_ACTIONS:
                walk.post(confirm["action"] or changelist, _form_data(confirm, FILL), f"{action}: confirmed")
                walk.actions.append(f"{model._meta.model_name}.{action}")


def _login(client, role: str):
    roles_sync()
    user = User.objects.create_user(f"walk-{role.lower().replace(' ', '-')}", password="walk-pw-123", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)


@pytest.fixture
def demo(db):
    demo_load(stdout=io.StringIO(), scale=0.5, now=NOW)
    # A draft copied from API Pro v2: the version's, prices' and tiers' editable forms hold stored decimals.
    plan_version_draft_from(version=PlanVersion.objects.get(plan__key="api-pro", number=2), now=NOW)
    with connection.cursor() as cursor:
        # The event list pages by PostgreSQL's row estimate, which autovacuum keeps in production; a table filled a
        # moment ago has none yet (the list would render every event on one page).
        cursor.execute(f"ANALYZE {Event._meta.db_table}")


@pytest.mark.parametrize("role", [FINANCE_ADMIN, FINANCE_VIEWER, SUPPORT])
def test_every_admin_page_writes_numbers_for_people_and_refuses_with_a_styled_page(client, demo, role):
    _login(client, role)
    walk = Walk(client, role)
    walk.open("/admin/")
    for path in _admin_paths():
        walk.open(path)
    _walk_actions(walk)
    assert walk.pages > 40  # the walk did open the back office
    if role == FINANCE_ADMIN:  # and confirmed every kind of action, each leaving messages
        assert {
            "invoice.record_payment_action",
            "invoice.credit_note_action",
            "wallet.grant_credits",
            "planversion.publish_versions",
        } <= set(walk.actions) and walk.messages > 20
    assert not walk.problems, walk.report()


def test_the_invoice_document_writes_numbers_for_people(demo):
    """The PDF's HTML of every demo invoice (drafts, paid, with taxes, with credits applied)."""
    problems = {}
    for invoice in Invoice.objects.all():
        for found in number_problems(read(invoice_html(invoice)).text):
            problems.setdefault(found, str(invoice))
    assert Invoice.objects.count() >= 32 and not problems, problems
