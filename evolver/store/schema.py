"""The store's tables as sqlmodel classes: the current shape, used for queries.

The database itself is built only by the named migrations in `migrations.py`;
a test checks that migrating a blank database yields exactly these tables.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Generation(SQLModel, table=True):
    __tablename__ = "generations"
    id: int = Field(primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="generations.id")
    base_model: str
    adapter_path: str | None = None
    adapter_sha256: str | None = None
    status: str
    config_hash: str
    config_json: str
    created_at: float
    finished_at: float | None = None
    note: str | None = None


class Phase(SQLModel, table=True):
    __tablename__ = "phases"
    id: int | None = Field(default=None, primary_key=True)
    generation_id: int = Field(foreign_key="generations.id")
    name: str
    status: str
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    detail: str | None = None


class Question(SQLModel, table=True):
    __tablename__ = "questions"
    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    split: str
    text: str
    gold: str
    content_hash: str
    meta: str | None = None


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"
    id: int | None = Field(default=None, primary_key=True)
    generation_id: int = Field(foreign_key="generations.id")
    purpose: str
    question_id: int = Field(foreign_key="questions.id")
    trial: int
    branch: int
    backend: str
    model_ref: str
    sampling: str
    seed: int
    prompt: str
    output: str
    answer: str | None = None
    correct: bool
    reason: str
    feedback: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    created_at: float


class Reflection(SQLModel, table=True):
    __tablename__ = "reflections"
    id: int | None = Field(default=None, primary_key=True)
    generation_id: int = Field(foreign_key="generations.id")
    purpose: str
    attempt_id: int = Field(foreign_key="attempts.id")
    branch: int
    instruction_id: str
    model_ref: str
    sampling: str
    seed: int
    prompt: str
    text: str
    tokens_out: int = 0
    next_attempt_id: int | None = Field(default=None, foreign_key="attempts.id")
    success: bool | None = None
    created_at: float


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"
    id: int | None = Field(default=None, primary_key=True)
    generation_id: int | None = Field(default=None, foreign_key="generations.id")
    kind: str
    source: str
    content_hash: str
    n_rows: int
    created_at: float


class DatasetRow(SQLModel, table=True):
    __tablename__ = "dataset_rows"
    dataset_id: int = Field(foreign_key="datasets.id", primary_key=True)
    idx: int = Field(primary_key=True)
    payload: str


class EvalResult(SQLModel, table=True):
    __tablename__ = "eval_results"
    id: int | None = Field(default=None, primary_key=True)
    generation_id: int = Field(foreign_key="generations.id")
    benchmark: str
    protocol: str
    metric: str
    value: float
    n: int
    config_hash: str
    created_at: float


class Evaluation(SQLModel, table=True):
    __tablename__ = "evaluations"
    id: int | None = Field(default=None, primary_key=True)
    generation_id: int = Field(foreign_key="generations.id")
    suite: str
    key: str
    identity: str
    fixed_key: str | None = None
    created_at: float
    finished_at: float | None = None


class Event(SQLModel, table=True):
    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    ts: float
    kind: str
    generation_id: int | None = Field(default=None, foreign_key="generations.id")
    actor: str
    reason: str
    metrics: str | None = None


class GenerationVersions(SQLModel, table=True):
    """The stack that made a generation (m004): JSON of python, platform, torch, transformers, trl, ..."""

    __tablename__ = "generation_versions"
    generation_id: int = Field(foreign_key="generations.id", primary_key=True)
    versions: str
    recorded_at: float


class Pointer(SQLModel, table=True):
    __tablename__ = "pointers"
    name: str = Field(primary_key=True)
    generation_id: int | None = Field(default=None, foreign_key="generations.id")
    updated_at: float


class TrainLog(SQLModel, table=True):
    __tablename__ = "train_logs"
    generation_id: int = Field(foreign_key="generations.id", primary_key=True)
    phase: str = Field(primary_key=True)
    step: int = Field(primary_key=True)
    loss: float | None = None
    learning_rate: float | None = None
    extra: str | None = None


class SchemaMigration(SQLModel, table=True):
    __tablename__ = "schema_migrations"
    name: str = Field(primary_key=True)
    applied_at: float
