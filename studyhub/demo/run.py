"""The demo study, end to end as far as the pipeline goes."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from studyhub.protocol.load import load_study
from studyhub.store.audit import verify_chain
from studyhub.store.db import open_store
from studyhub.store.studies import register, status

__all__ = ["DEMO_PROTOCOL", "run_demo"]

#: The shipped example protocol (its plan lies in ../analysis/).
DEMO_PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "inspection_demo.yaml"


def run_demo(out_dir: Path, *, console: Console, protocol: Path = DEMO_PROTOCOL) -> None:
    """Validate and register the demo protocol in ``out_dir``, then report its status."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = load_study(protocol)
    console.print(f"[1/3] protocol {files.protocol.id} and plan {files.plan.id} are valid")
    store = open_store(f"sqlite:///{out_dir / 'studyhub.db'}")
    try:
        reg = register(store, files, actor="demo")
        verb = "registered" if reg.created else "already registered"
        console.print(f"[2/3] study {reg.study_id} {verb}: hash {reg.registration_hash}")
        st = status(store, reg.study_id)
        with store.session() as s:
            chain = verify_chain(s)
    finally:
        store.dispose()
    console.print(f"[3/3] state {st.state}; {chain.render()}")
    console.print(f"database: {out_dir / 'studyhub.db'}")
