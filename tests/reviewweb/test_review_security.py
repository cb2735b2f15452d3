"""The review page refuses what it should: exposure without a password hash, a POST without
its CSRF token, another run's image, a path where an id belongs, an unknown label.

The runs are written with SQL (bench.review_worklist.build_run) on SQLite and PostgreSQL, the
server is the real `allscreen serve` in a subprocess, and requests are plain HTTP.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, update

from allscreen.demo import make_synthetic_images
from allscreen.schema import Case, Image, PolicyRecord, Verdict
from allscreen.settings import Settings
from bench.review_worklist import build_run
from reviewweb.security import verify_password
from tests.conftest import need
from tests.reviewweb.server import UNCHECKED_TLS, fetch, review_server
from tests.support.cli import allscreen


def _one_line_refusal(*args: str, settings: Settings, words: str) -> None:
    done = allscreen("serve", *args, settings=settings, timeout=60)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_exposed_address_needs_a_password_hash_and_basic_auth_then_guards_every_page(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=db_url)
    _one_line_refusal(
        "--address", "0.0.0.0", settings=settings, words="refusing to serve the review page"
    )
    _one_line_refusal(
        "--address", "0.0.0.0", "--basic-auth", "alice:secret", settings=settings,
        words="HASH from `allscreen serve --hash-password`",
    )  # fmt: skip
    hashed = subprocess.run(
        [sys.executable, "-m", "allscreen", "serve", "--hash-password"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert hashed.returncode == 0, hashed.stderr
    made = hashed.stdout.strip()
    assert made.startswith("scrypt$") and "s3cret" not in made
    assert verify_password("s3cret", made) and not verify_password("s3cret ", made)

    with review_server(settings, tmp_path / "serve.log", "--basic-auth", f"alice:{made}") as base:
        status, body, headers = fetch(base + "/")
        assert status == 401 and "Sign in" in body
        assert headers["www-authenticate"].startswith("Basic")

        def auth(password: str) -> dict[str, str]:
            token = base64.b64encode(f"alice:{password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}

        assert fetch(base + "/", headers=auth("wrong"))[0] == 401
        status, body, _ = fetch(base + "/", headers=auth("s3cret"))
        assert status == 200 and "Signed in as <strong>alice</strong>" in body

    # Over TLS the cookies are `Secure` too.
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made_cert = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, check=False,
    )  # fmt: skip
    if made_cert.returncode != 0:
        need("no openssl to make a test certificate")
    tls_args = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    with review_server(settings, tmp_path / "tls.log", *tls_args) as base:
        assert base.startswith("https://")
        status, _, headers = fetch(base + "/", tls=UNCHECKED_TLS)
        assert status == 200
        assert "Secure" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]


def test_requests_naming_what_they_should_not_get_a_clear_4xx_page(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    files = sorted(make_synthetic_images(tmp_path / "img", 3).iterdir())
    run_a = build_run(engine, images=6, cases=2, name="a", files=files)
    run_b = build_run(engine, images=3, cases=1, name="b", files=files, seed=1)
    with engine.connect() as conn:
        image_b = conn.scalar(select(func.min(Image.id)).where(Image.run_id == run_b))
        image_a = int(conn.scalar(select(func.min(Image.id)).where(Image.run_id == run_a)) or 0)
        case_a = conn.scalar(select(func.min(Case.id)).where(Case.run_id == run_a))
        case_b = conn.scalar(select(Case.id).where(Case.run_id == run_b))
    # An image whose file is gone (the archive not mounted here, say).
    (tmp_path / "gone.jpg").write_bytes(files[0].read_bytes())
    with engine.begin() as conn:
        conn.execute(
            update(Image).where(Image.id == image_a).values(location=bytes(tmp_path / "gone.jpg"))
        )
    (tmp_path / "gone.jpg").unlink()
    run_c = build_run(engine, images=2, cases=1, name="c", files=files, seed=2)
    with engine.begin() as conn:  # a run with labels only: no policy to call or queue with
        conn.execute(delete(PolicyRecord).where(PolicyRecord.run_id == run_c))

    settings = Settings(database_url=db_url)
    with review_server(settings, tmp_path / "serve.log") as base:
        a = f"{base}/runs/{run_a}"
        refusals = [
            (f"{a}/images/{image_b}", 404, f"Run a has no image with id {image_b}."),
            (f"{a}/images/..%2F..%2F..%2Fetc%2Fpasswd", 404, "There is no such page here."),
            (f"{a}/images/%2Fetc%2Fpasswd", 404, "There is no such page here."),
            (f"{a}/images/..", 400, "image ids are whole numbers"),
            (f"{a}/images/etc-passwd", 400, "image ids are whole numbers"),
            (f"{a}/images/{image_a}", 404, "its file is not reachable from this machine"),
            (f"{a}/cases/{case_b}", 404, f"Run a has no case with id {case_b}."),
            (f"{base}/runs/999999", 404, "There is no run with id 999999."),
            (f"{base}/runs/a", 400, "run ids are whole numbers"),
            (f"{a}?call=everything", 400, "call must be one of"),
            (f"{base}/runs/{run_c}", 409, "run c has no screening policy"),
        ]
        for url, code, words in refusals:
            status, body, _ = fetch(url)
            assert (status, words in body) == (code, True), (url, status, body[-600:])
            assert "Traceback" not in body and "root:" not in body
        status, _, headers = fetch(f"{a}/images/{image_a + 1}")
        assert (status, headers["content-type"]) == (200, "image/jpeg")

        # The run's summary, and its HTML report as a download.
        status, body, _ = fetch(f"{a}/summary")
        assert status == 200 and "Images reviewed" in body
        status, body, headers = fetch(f"{a}/report")
        assert status == 200 and "<html" in body.lower()
        assert headers["content-disposition"].startswith("attachment;")

        # A session cookie (HttpOnly, SameSite=Strict) and a CSRF token come with each page.
        status, page, headers = fetch(f"{a}/cases/{case_a}")
        assert status == 200
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
        assert token is not None
        jar = {"Cookie": cookie.split(";")[0] + "; allscreen_reviewer=eve"}

        def post(fields: dict[str, str], **extra: str) -> tuple[int, str]:
            data = urllib.parse.urlencode(fields).encode()
            status, body, _ = fetch(f"{a}/verdicts", data=data, headers={**jar, **extra})
            return status, body

        verdict = {"image": str(image_a + 1), "label": "Early"}
        assert post(verdict)[0] == 403  # no token
        assert post({**verdict, "csrf": "0" * 64})[0] == 403  # a token of no session
        status, body = post({**verdict, "csrf": token[1]}, Origin="http://evil.example")
        assert status == 403 and "another site" in body
        status, body = post({**verdict, "label": "Blast", "csrf": token[1]})
        assert status == 400 and "&#39;Blast&#39; is not a label of run a" in body
        status, body = post({"image": str(image_b), "label": "Early", "csrf": token[1]})
        assert status == 404 and f"Run a has no image with id {image_b}." in body
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Verdict)) == 0

        # With its token the same form is recorded, through `record_verdicts`.
        status, _ = post({**verdict, "csrf": token[1]})
        assert status == 303 or status == 200
        with engine.connect() as conn:
            kept = conn.execute(select(Verdict.image_id, Verdict.label, Verdict.reviewer)).all()
        assert [tuple(k) for k in kept] == [(image_a + 1, "Early", "eve")]


@pytest.mark.parametrize("value", ["1e3", "-1", "0x10", "١٢", "9" * 40])
def test_an_id_that_is_not_a_plain_whole_number_is_refused(value: str) -> None:
    from starlette.exceptions import HTTPException

    from reviewweb.lookup import parse_id

    with pytest.raises(HTTPException) as err:
        parse_id(value, "image")
    assert err.value.status_code == 400


def test_every_label_gets_a_button_and_the_first_nine_a_key() -> None:
    from reviewweb.pages import label_keys

    labels = [f"L{i}" for i in range(11)] + ["unsure"]
    keys = label_keys(labels)
    assert [label for _, label in keys] == labels
    assert [key for key, _ in keys] == [*"123456789", "", "", "u"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/runs/1/cases/2#card-5", "/runs/1/cases/2#card-5"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/runs/1\r\nSet-Cookie: x=1", "/"),
        (None, "/"),
    ],
)
def test_a_form_can_only_send_the_browser_back_to_this_site(
    value: str | None, expected: str
) -> None:
    from reviewweb.lookup import safe_next

    assert safe_next(value) == expected
