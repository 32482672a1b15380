"""The Streamlit rater app, driven in-process with ``AppTest``: every page, through the services."""

from __future__ import annotations

import base64
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import event, func, select
from streamlit.testing.v1 import AppTest

from studyhub.app import context
from studyhub.commands.serve import APP_SCRIPT
from studyhub.protocol import load_study
from studyhub.rating import AUTH_FAILED, consent_page, monitor_summary, progress
from studyhub.rating.outage import STORE_UNAVAILABLE
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import Assignment, AuditEvent, Consent, Response, Stimulus
from tests.locks import write_lock_held
from tests.rating.conftest import STUDY, RatingStudy

TIMEOUT_S = 30


@pytest.fixture
def app(rs: RatingStudy, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], AppTest]]:
    """A fresh ``AppTest`` of the entry script, pointed at the test study."""
    monkeypatch.setenv(context.DB_ENV, rs.store.url)
    monkeypatch.setenv(context.STUDY_ENV, STUDY)
    yield lambda: AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S)
    context.get_store.clear()  # the next test has another database


def _texts(at: AppTest) -> str:
    """Everything the page sends to the browser, element by element (labels, options, text)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            found.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(found)


def _assert_blinded(at: AppTest, rs: RatingStudy) -> None:
    text = _texts(at)
    assert text  # something was drawn
    for secret in rs.secrets:  # whole words: "ig" is an arm, "highlight" is not
        assert not re.search(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", text), secret


def _clickable(at: AppTest) -> list[Any]:
    """The clickable stimulus images (a custom component) on the page."""
    return [
        c for c in at.get("component_instance") if "image_coordinates" in c.proto.component_name
    ]


def _clickable_png(at: AppTest) -> bytes:
    """The PNG the clickable stimulus shows (sent to the browser as a data URL)."""
    (component,) = _clickable(at)
    src = json.loads(component.proto.json_args)["src"]
    return base64.b64decode(src.split(",", 1)[1])


def _stimulus_caption(at: AppTest) -> str:
    """The stimulus's caption, without the hint about clicking."""
    (text,) = [c.value for c in at.caption if "highlight" in c.value]
    return str(text).split(" · ")[0]


def _questions(at: AppTest) -> dict[str, Any]:
    """The instrument's radio questions by item id (keys ``<assignment>:<item>``)."""
    return {
        str(r.key).split(":", 1)[1]: r for r in at.radio if str(r.key).split(":", 1)[0].isdigit()
    }


def _sign_in(at: AppTest, token: str) -> AppTest:
    at.run()
    at.text_input[0].input(token)
    return at.button[0].click().run()


def _consent(at: AppTest) -> AppTest:
    at.checkbox(key="consent_box").check()
    return at.button(key="start").click().run()


def _answer(at: AppTest, usefulness: int = 4, plausible: str = "yes") -> AppTest:
    radios = _questions(at)
    radios["usefulness"].set_value(usefulness)
    radios["plausible"].set_value(plausible)
    submit = next(b for b in at.button if b.key and b.key.startswith("submit:"))
    return submit.click().run()


def test_without_a_study_the_app_says_how_to_start_it(
    app: Callable[[], AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(context.STUDY_ENV)
    at = app().run()
    assert "studyhub serve --study" in at.error[0].value


def test_a_bad_token_shows_the_generic_error_and_stays_on_sign_in(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    at = _sign_in(app(), rs.tokens["alice"][:-2] + "zz")
    assert not at.exception
    assert [e.value for e in at.error] == [AUTH_FAILED]
    assert at.title[0].value == "Sign in"
    assert "principal" not in at.session_state


def test_a_rater_consents_rates_one_item_and_progress_advances(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    alice = rs.principals["alice"]
    at = _sign_in(app(), rs.tokens["alice"])
    assert not at.error and at.title[0].value == "Before you start"
    assert "Judge the highlight" in at.markdown[0].value  # the protocol's instructions
    _assert_blinded(at, rs)
    at.button(key="start").click().run()
    assert at.warning[0].value.startswith("Tick the box")
    at = _consent(at)
    assert not at.exception and not at.error
    # the stimulus (a clickable image, for cue marks) fills its column; the original is
    # toggled ("Show the highlight" off) or shown beside it at the same size on request
    assert len(_clickable(at)) == 1 and not at.get("image")
    aid0 = rs.queue["alice"][0]
    at.toggle(key=f"beside:{aid0}").set_value(True).run()
    assert len(_clickable(at)) == 1 and len(at.get("image")) == 1
    at.toggle(key=f"beside:{aid0}").set_value(False).run()
    assert at.get("progress")[0].proto.text.startswith("Item 1 of 5")
    assert set(_questions(at)) == {"usefulness", "plausible"}
    assert progress(rs.store, alice).done == 0
    # one cue mark, entered as numbers
    aid = rs.queue["alice"][0]
    at.number_input(key=f"mark_x:{aid}").set_value(0.25)
    at.number_input(key=f"mark_y:{aid}").set_value(0.75)
    at.selectbox(key=f"mark_tag:{aid}").set_value("misleading")
    at = at.button(key=f"mark_add:{aid}").click().run()
    assert any("misleading cue" in m.value for m in at.markdown)
    _assert_blinded(at, rs)
    at = _answer(at)
    assert not at.exception and not at.error
    assert progress(rs.store, alice).done == 1
    assert at.get("progress")[0].proto.text.startswith("Item 2 of 5")
    assert f"item:{aid}" not in at.session_state  # the answered item's key is dropped
    assert monitor_summary(rs.store, rs.principals["monica"]).raters[0].median_time_ms is not None
    _assert_blinded(at, rs)


def test_consent_is_recorded_once_and_reading_the_start_page_starts_no_clock(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    alice = rs.principals["alice"]
    at = _sign_in(app(), rs.tokens["alice"])
    assert at.checkbox(key="consent_box").label == consent_page(rs.store, alice).statement
    with rs.store.session() as s:  # the start page served nothing
        assert (
            s.scalar(
                select(func.count(Assignment.id)).where(Assignment.first_served_at.is_not(None))
            )
            == 0
        )
        assert s.scalar(select(func.count(Consent.id))) == 0
    at = _consent(at)
    assert at.get("progress")[0].proto.text.startswith("Item 1 of 5")
    with rs.store.session() as s:
        (row,) = s.scalars(select(Consent)).all()
        assert row.statement_sha256 == consent_page(rs.store, alice).statement_sha256
        assert [e.action for e in s.scalars(select(AuditEvent))].count("consent") == 1
    # signing in again: the agreement is shown with its date, one click continues
    again = _sign_in(app(), rs.tokens["alice"])
    assert again.title[0].value == "Before you start"
    assert not again.checkbox and "You agreed on" in again.caption[-1].value
    again = again.button(key="start").click().run()
    assert again.get("progress")[0].proto.text.startswith("Item 1 of 5")
    with rs.store.session() as s:
        assert s.scalar(select(func.count(Consent.id))) == 1


def test_missing_answers_show_the_service_message_and_store_nothing(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    at = _consent(_sign_in(app(), rs.tokens["alice"]))
    submit = next(b for b in at.button if b.key and b.key.startswith("submit:"))
    at = submit.click().run()
    assert "item 'usefulness' is required" in at.error[0].value
    assert progress(rs.store, rs.principals["alice"]).done == 0


def test_overlay_toggle_and_opacity_change_the_stimulus(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    at = _consent(_sign_in(app(), rs.tokens["alice"]))
    aid = rs.queue["alice"][0]
    assert _stimulus_caption(at) == "With the highlight"
    stored = _clickable_png(at)
    at = at.slider(key=f"opacity:{aid}").set_value(0.8).run()
    assert _stimulus_caption(at) == "With the highlight (80% opacity)"
    assert _clickable_png(at) != stored  # blended anew at 80%
    at = at.toggle(key=f"overlay:{aid}").set_value(False).run()
    assert _stimulus_caption(at) == "Without the highlight"
    assert at.slider(key=f"opacity:{aid}").disabled


def test_zoom_shows_position_controls_and_says_so(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    at = _consent(_sign_in(app(), rs.tokens["alice"]))
    aid = rs.queue["alice"][0]
    assert not [s for s in at.slider if str(s.key).startswith("pan_")]
    at = at.select_slider(key=f"zoom:{aid}").set_value(2.0).run()
    assert not at.exception
    assert {str(s.key) for s in at.slider} >= {f"pan_x:{aid}", f"pan_y:{aid}"}
    assert _stimulus_caption(at) == "With the highlight, zoomed 2x"
    at = at.slider(key=f"pan_x:{aid}").set_value(0.9).run()
    assert not at.exception and _stimulus_caption(at) == "With the highlight, zoomed 2x"


def test_the_whole_queue_shows_the_catch_prompt_and_ends_all_done(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    at = _consent(_sign_in(app(), rs.tokens["bob"]))
    prompts = []
    for _ in range(5):
        prompts.append([w.value for w in at.warning])
        at = _answer(at, usefulness=2)
        assert not at.exception and not at.error
    assert prompts[2] == ["Please answer 2 for usefulness\\."]
    assert sum(map(len, prompts)) == 1
    assert at.title[0].value == "All done"
    assert "All 5 items are done" in at.success[0].value
    assert progress(rs.store, rs.principals["bob"]).finished
    _assert_blinded(at, rs)


def test_a_washout_shows_when_the_next_session_opens(
    make_study: Callable[..., RatingStudy], monkeypatch: pytest.MonkeyPatch
) -> None:
    rs = make_study(washout_days=7, consented=False)
    monkeypatch.setenv(context.DB_ENV, rs.store.url)
    monkeypatch.setenv(context.STUDY_ENV, STUDY)
    try:
        at = _consent(
            _sign_in(
                AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S), rs.tokens["alice"]
            )
        )
        for _ in range(3):  # session 1
            at = _answer(at)
        assert at.title[0].value == "Next session not open yet"
        assert "Session 2 opens at" in at.info[0].value
        assert not at.get("image")
    finally:
        context.get_store.clear()


def test_a_monitor_sees_progress_only(app: Callable[[], AppTest], rs: RatingStudy) -> None:
    at = _sign_in(app(), rs.tokens["monica"])
    assert not at.exception and not at.error
    assert at.title[0].value == "Study progress"
    assert not at.get("image") and not at.radio
    table = at.table[0].value
    assert list(table["rater"]) == ["alice", "bob"]
    assert list(table["catch failures"]) == [0, 0]
    _assert_blinded(at, rs)
    text = _texts(at)
    assert "usefulness" not in text and "plausible" not in text  # no instrument, no answers


def test_sign_out_returns_to_sign_in(app: Callable[[], AppTest], rs: RatingStudy) -> None:
    at = _sign_in(app(), rs.tokens["monica"])
    at = at.sidebar.button[0].click().run()
    assert at.title[0].value == "Sign in"


def test_every_instrument_item_type_is_drawn_answered_and_stored_normalised(
    make_study: Callable[..., RatingStudy],
    demo_copy: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Single choice, diagnosis with confidence and free text, next to Likert and yes/no."""
    text = demo_copy.read_text()
    anchor = "    - id: comment\n"
    assert anchor in text
    demo_copy.write_text(
        text.replace(
            anchor,
            "    - id: region\n"
            "      type: single_choice\n"
            "      prompt: Where is the strongest highlight?\n"
            "      choices: [on the defect, next to it, elsewhere]\n"
            "    - id: diagnosis\n"
            "      type: diagnosis\n"
            "      prompt: What defect do you see?\n" + anchor,
            1,
        )
    )
    rs = make_study(consented=False)
    monkeypatch.setenv(context.DB_ENV, rs.store.url)
    monkeypatch.setenv(context.STUDY_ENV, STUDY)
    try:
        at = _consent(
            _sign_in(
                AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S), rs.tokens["alice"]
            )
        )
        aid = rs.queue["alice"][0]
        questions = _questions(at)
        assert set(questions) == {"usefulness", "plausible", "region", "diagnosis:label"}
        assert questions["region"].options == ["on the defect", "next to it", "elsewhere"]
        labels = questions["diagnosis:label"].options
        # the protocol's classes, in the model's order
        assert labels == list(load_study(demo_copy).protocol.data.labels)
        assert set(labels) == {"none", "crack", "scratch", "pit"}
        _assert_blinded(at, rs)
        questions["usefulness"].set_value(5)
        questions["plausible"].set_value("no")
        questions["region"].set_value("next to it")
        questions["diagnosis:label"].set_value("scratch")
        at.slider(key=f"{aid}:diagnosis:confidence").set_value(80)
        at.text_area(key=f"{aid}:comment").input("  glare on the left  ")
        submit = next(b for b in at.button if b.key and b.key.startswith("submit:"))
        at = submit.click().run()
        assert not at.exception and not at.error
        with rs.store.session() as s:
            (row,) = s.scalars(select(Response)).all()
        assert row.answers == {
            "usefulness": 5,
            "plausible": "no",
            "region": "next to it",
            "diagnosis": {"label": "scratch", "confidence": 80.0},
            "comment": "glare on the left",
        }
    finally:
        context.get_store.clear()


def test_a_window_preset_redraws_the_plain_image_and_the_blend(
    make_study: Callable[..., RatingStudy],
    demo_copy: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DICOM item offers the protocol's presets; choosing one shows the re-windowed image."""
    demo_copy.write_text(
        demo_copy.read_text().replace(
            "  opacity: 0.5\n",
            "  opacity: 0.5\n  window_presets:\n    - {name: Lung, center: -600, width: 1500}\n",
        )
    )
    rs = make_study(consented=False)
    aid = rs.queue["alice"][0]
    raw = io.BytesIO()
    np.save(raw, np.full((2, 2), -600.0, dtype="<f4"), allow_pickle=False)
    with rs.store.write() as s:
        stim = s.get_one(Stimulus, s.get_one(Assignment, aid).stimulus_id)
        stim.original_raw = zlib.compress(raw.getvalue())
        append_event(s, actor="test", action="test_setup", study_id=STUDY)
    monkeypatch.setenv(context.DB_ENV, rs.store.url)
    monkeypatch.setenv(context.STUDY_ENV, STUDY)
    try:
        at = _consent(
            _sign_in(
                AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S), rs.tokens["alice"]
            )
        )
        window = at.selectbox(key=f"window:{aid}")
        assert window.options == ["As stored", "Lung"]
        at = at.toggle(key=f"overlay:{aid}").set_value(False).run()
        before = _clickable_png(at)
        at = at.selectbox(key=f"window:{aid}").set_value("Lung").run()
        assert not at.exception and not at.error
        assert _stimulus_caption(at) == "Without the highlight, window Lung"
        shown = np.asarray(Image.open(io.BytesIO(_clickable_png(at))).convert("L"))
        # -600 HU is the Lung window's centre: (x - c + 0.5) / (w - 1) + 0.5 -> 128 of 255
        side = shown.shape[1]
        assert np.all(shown[:side] == 128)
        assert _clickable_png(at) != before
        at = at.toggle(key=f"overlay:{aid}").set_value(True).run()
        assert _stimulus_caption(at) == "With the highlight, window Lung"
        # the next item is a PNG: no window control
        at = _answer(at)
        assert not [b for b in at.selectbox if str(b.key).startswith("window:")]
    finally:
        context.get_store.clear()


# --- the store failing ------------------------------------------------------------


def _give_up_quickly(store: Store) -> None:
    """The app's store gives up on a held lock after 0.2 s instead of its usual 60 s."""
    sqlite = store.engine.dialect.name == "sqlite"

    @event.listens_for(store.engine, "connect")
    def _short(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=200" if sqlite else "SET lock_timeout = '200ms'")
        cur.close()
        if not sqlite:
            dbapi_conn.commit()  # psycopg began a transaction; the setting stays for the session

    store.engine.dispose()  # pooled connections reconnect with it


def _assert_plain_unavailable(at: AppTest, *leaks: str) -> None:
    assert not at.exception
    assert [e.value for e in at.error] == [STORE_UNAVAILABLE]
    assert at.title[0].value == "Please try again in a minute"
    text = _texts(at)
    for leak in ("SELECT", "INSERT", "UPDATE", "sqlite", "psycopg", "Traceback", ".py", *leaks):
        assert leak not in text, leak


def test_a_store_locked_past_its_timeout_shows_a_plain_page_then_recovers(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    at = _consent(_sign_in(app(), rs.tokens["alice"]))
    assert at.get("progress")[0].proto.text.startswith("Item 1 of 5")
    _give_up_quickly(context.get_store(rs.store.url))  # the store the app holds
    radios = _questions(at)
    radios["usefulness"].set_value(4)
    radios["plausible"].set_value("yes")
    submit = next(b for b in at.button if b.key and b.key.startswith("submit:"))
    with write_lock_held(rs.store):  # submitting must write; the lock outlasts the wait
        at = submit.click().run()
    _assert_plain_unavailable(at, rs.store.url.split("///")[-1], "locked", "lock timeout")
    assert not _clickable(at) and not _questions(at)  # nothing of the item page is left
    assert progress(rs.store, rs.principals["alice"]).done == 0
    at = at.run()  # the lock is gone: trying again works
    assert not at.error and at.get("progress")[0].proto.text.startswith("Item 1 of 5")
    at = _answer(at)
    assert not at.exception and not at.error
    assert progress(rs.store, rs.principals["alice"]).done == 1


def test_signing_in_while_the_store_is_locked_shows_the_plain_page(
    app: Callable[[], AppTest], rs: RatingStudy
) -> None:
    at = app().run()
    _give_up_quickly(context.get_store(rs.store.url))
    at.text_input[0].input(rs.tokens["alice"])
    with write_lock_held(rs.store):  # sign-in records the attempt: it must write
        at = at.button[0].click().run()
    _assert_plain_unavailable(at, "locked", "lock timeout")
    assert "principal" not in at.session_state
    assert _sign_in(at, rs.tokens["alice"]).title[0].value == "Before you start"


@pytest.mark.parametrize(
    "url",
    ["sqlite:///{tmp}/moved-away.db", "postgresql+psycopg://studyhub@127.0.0.1:9/nowhere"],
    ids=["missing-file", "unreachable-server"],
)
def test_a_database_that_cannot_be_opened_shows_the_plain_page(
    app: Callable[[], AppTest], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str
) -> None:
    monkeypatch.setenv(context.DB_ENV, url.format(tmp=tmp_path))
    at = app().run()
    _assert_plain_unavailable(at, str(tmp_path), "127.0.0.1", "moved-away", "nowhere")
    assert not at.text_input  # no sign-in form against a store that is not there
