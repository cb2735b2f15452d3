"""The results schema, shared by producer and worker. Alembic migrations create it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUS_DONE = "done"  #: the image was classified
STATUS_FAILED = "failed"  #: the image could not be classified; `error` says why


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations stay diffable."""

    metadata = MetaData(naming_convention=NAMING)


class Run(Base):
    """A screening run: a named set of images screened together."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    #: How image paths are stored (`submit --store-paths`): `absolute` (paths relative to the
    #: root for people, absolute locations for reading), `relative` (relative paths only) or
    #: `hashed` (a keyed hash of each relative path, no location).
    path_mode: Mapped[str] = mapped_column(String(10), server_default="absolute")
    #: A fingerprint of the producer's path key (`hashed` runs), never the key itself.
    path_key_id: Mapped[str | None] = mapped_column(String(64))


class Image(Base):
    """One distinct image (by content) registered in a run."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("run_id", "sha256", name="uq_images_run_sha256"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)  # relative to the archive root (or its keyed hash)
    location: Mapped[bytes] = mapped_column(LargeBinary)  # raw bytes (any name); see Run.path_mode
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    ground_truth: Mapped[str | None] = mapped_column(String(100))
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    #: Times a worker began classifying this image alone (an over-delivered batch, one image
    #: at a time) and did not commit its result: deaths with this image in flight.
    attempts_alone: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    case_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("cases.id", ondelete="SET NULL"),
        index=True,
    )  # the case (patient, slide, accession) the image belongs to, if the run has cases


class Result(Base):
    """The outcome for one image of a run: exactly one row, written as an upsert."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("run_id", "image_id", name="uq_results_run_image"),
        # Counts per status, and which model a run used, read from the index alone.
        Index("ix_results_run_status_model", "run_id", "status", "model_sha256"),
        # `allscreen devices`: each device's results of the last minute, across runs.
        Index("ix_results_device_finished", "device", "finished_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10))
    label: Mapped[str | None] = mapped_column(String(100))
    confidence: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[str | None] = mapped_column(Text)  # JSON {label: score}; labels from `hello`
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(50))
    device: Mapped[str] = mapped_column(String(200))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decode_ms: Mapped[float | None] = mapped_column(Float)
    inference_ms: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text)


class Refusal(Base):
    """A device that refused a pinned run's batches because it holds another model."""

    __tablename__ = "refusals"
    __table_args__ = (
        UniqueConstraint("run_id", "device", "model_sha256", name="uq_refusals_run_device_model"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(String(200))
    model_sha256: Mapped[str] = mapped_column(String(64))  # the model the device holds
    model_file: Mapped[str] = mapped_column(Text)  # its path on the device, for people
    batches: Mapped[int] = mapped_column(Integer, default=1)  # refusals so far
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Case(Base):
    """A case of a run (a patient, slide or accession): the unit a screening decision is for."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_cases_run_name"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    patient: Mapped[str | None] = mapped_column(String(300))


class PolicyRecord(Base):
    """A screening policy set on a run. Append-only: the newest row of a run is in force."""

    __tablename__ = "policies"
    __table_args__ = (Index("ix_policies_run_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(Text)  # where it came from, for people
    body: Mapped[str] = mapped_column(Text)  # JSON, see allscreen.policy.ScreeningPolicy


class ModelRecord(Base):
    """A model seen by a worker: its identity, labels and the thresholds its `hello` carries."""

    __tablename__ = "models"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(50))
    labels: Mapped[str] = mapped_column(Text)  # JSON list, in the model's order
    thresholds: Mapped[str] = mapped_column(Text)  # JSON: hello's model_parameters.thresholds
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Verdict(Base):
    """A reviewer's verdict on one image. Append-only: a later verdict supersedes an earlier."""

    __tablename__ = "verdicts"
    __table_args__ = (Index("ix_verdicts_run_image", "run_id", "image_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("images.id", ondelete="CASCADE")
    )
    label: Mapped[str] = mapped_column(String(100))  # a model label, or `unsure`
    reviewer: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_label: Mapped[str | None] = mapped_column(String(100))  # what the model said
    model_confidence: Mapped[float | None] = mapped_column(Float)
    model_call: Mapped[str | None] = mapped_column(String(10))  # under the policy then in force


class RunTally(Base):
    """Images registered per run, kept by a trigger on `images` (see allscreen/tally_sql.py)."""

    __tablename__ = "run_tallies"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger, default=0)


class ResultTally(Base):
    """Results per (run, device, minute finished), kept by triggers on `results`.

    Readers (`status`, `report`, `metrics`) sum these few rows instead of scanning results.
    """

    __tablename__ = "result_tallies"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    device: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)  #: epoch s // 60 (UTC)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    inference_n: Mapped[int] = mapped_column(BigInteger, default=0)  #: done, with a time
    inference_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    wait_n: Mapped[int] = mapped_column(BigInteger, default=0)  #: done, with a queue time
    wait_s_sum: Mapped[float] = mapped_column(Float, default=0.0)
    #: First queue time and last finish time ever written (only ever widened, never narrowed).
    first_queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LatencyTally(Base):
    """Done results per (run, device, kind, log-spaced bucket): histograms for percentiles.

    `kind` is `inference` (inference_ms, in ms) or `wait` (queued to finished, in s); bucket
    `i` holds values in (`tally_buckets.upper[i-1]`, `upper[i]`].
    """

    __tablename__ = "latency_tallies"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    device: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class TruthTally(Base):
    """Images registered per (run, ground truth), kept by the triggers on `images`."""

    __tablename__ = "truth_tallies"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    truth: Mapped[str] = mapped_column(String(100), primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger, default=0)


class LabelTally(Base):
    """Done results per (run, model, ground truth, predicted label); '' stands for none."""

    __tablename__ = "label_tallies"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    model_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    truth: Mapped[str] = mapped_column(String(100), primary_key=True)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(50))


class TallyBucket(Base):
    """The fixed upper bounds of the latency buckets (allscreen.tallies.BUCKET_EDGES)."""

    __tablename__ = "tally_buckets"

    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    upper: Mapped[float] = mapped_column(Float, unique=True)
