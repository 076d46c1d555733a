"""Configuration from the environment (prefix ``CAD_``), with working local defaults."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cad.security_headers import tile_origin

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAD_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/cad"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every Redis key and channel starts with this, so two deployments (or two tests)
    # can share one Redis without seeing each other.
    redis_prefix: str = "cad"
    jwt_secret: str = DEV_JWT_SECRET
    # Access tokens are short: a refresh (rotating, kept in PostgreSQL) renews them, and
    # ending a session refuses them on every worker within seconds (docs/SECURITY.md).
    jwt_ttl_s: int = Field(default=900, ge=10, le=24 * 3600)
    # A session's absolute life: a shift and some, whatever the refreshes.
    session_ttl_s: int = Field(default=14 * 3600, ge=60)
    # Sign-in lockout: this many failures for one account within the window lock it for
    # lockout_s (429 with Retry-After), the same for a name that has no account.
    signin_max_failures: int = Field(default=5, ge=1)
    signin_window_s: int = Field(default=900, ge=1)
    signin_lockout_s: int = Field(default=900, ge=1)
    # Per client address, far higher: a whole control room may sign in from one address.
    signin_address_max_failures: int = Field(default=100, ge=1)
    # Session cookies (the consoles) get the Secure flag on HTTPS; force it behind a TLS
    # proxy that talks plain HTTP to us.
    cookie_secure: bool | None = None
    db_pool_min: int = 2
    db_pool_max: int = 20
    db_command_timeout_s: float = 10.0
    # How long a request waits for a free connection before answering 503.
    db_acquire_timeout_s: float = 10.0
    # How long a worker's shared intake read may wait for more calls, and how many it
    # waits for (only while that many are under way): as PostgreSQL's commit_delay and
    # commit_siblings. A statement costs about as much as three calls in it, so under a
    # stream of calls a millisecond buys fewer, fuller statements (cad/db/group_commit.py).
    intake_linger_ms: float = Field(default=1.0, ge=0, le=50)
    intake_min_batch: int = Field(default=4, ge=1, le=64)
    # Projected CRS for distances in metres (British National Grid by default).
    epsg: int = 27700
    # Grades the engine dispatches by itself, e.g. "I,S"; unset: the grade scheme's
    # auto_dispatch flags (cad/grading/grade_scheme.json).
    auto_dispatch_grades: str | None = None
    # A unit position older than this is flagged as stale, not trusted for ETA.
    stale_position_s: int = 1800
    # A sent assignment not acknowledged within this raises an alarm.
    ack_timeout_s: int = 120
    # An I-grade incident may divert a unit from a lower-grade job when it saves this much.
    divert_min_saving_s: int = 120
    # Who this service is in EIDO documents (NENA: a domain-like agency identifier), and
    # the element name that issues them.
    eido_agency_id: str = "cad999.police.example.uk"
    eido_element_id: str = "cad.cad999.police.example.uk"
    # An imported incident with no point inside the service area (a civic address only, or
    # a place beyond the border) is put here, with the partner's place kept as its text.
    eido_fallback_lat: float = Field(default=51.5074, ge=-90, le=90)
    eido_fallback_lng: float = Field(default=-0.1278, ge=-180, le=180)
    # Where NENA's EIDO schema (openapi.yaml + NIEMComponents/) is read from: it is NENA's,
    # not ours, so it is never copied into the repository. Unset: ../shared/standards/eido
    # beside the checkout (cad.eido.schema.default_schema_dir).
    eido_schema_dir: str | None = None
    # Partner deliveries (cad/subscriptions): how long a partner may take to answer, the
    # first retry's delay (doubling, with jitter, up to the cap) and how often an idle
    # outbox looks at the event log.
    partner_timeout_s: float = Field(default=5.0, gt=0)
    partner_retry_base_s: float = Field(default=1.0, gt=0)
    partner_retry_cap_s: float = Field(default=300.0, gt=0)
    outbox_poll_s: float = Field(default=0.5, gt=0)
    # Units sent at once when an officer presses the emergency button.
    emergency_units: int = Field(default=3, ge=1, le=20)
    # Fitted ETA parameters from `cad eta calibrate` (JSON): they override the built-in
    # defaults for the unit types the file names. Unset: the built-in defaults.
    eta_params_file: str | None = None
    engine_interval_s: float = 1.0
    # After start-up, move what is loaded (areas, gazetteer, fleet) out of the cyclic
    # collector's sight and collect less often: a served worker allocates per request,
    # and full collections walking the start-up heap cost it several percent. `cad serve`
    # turns this on; tests, which build many apps in one process, leave it off.
    gc_freeze: bool = False
    max_body_bytes: int = 256 * 1024
    # Intake requests per user per minute; high enough for load tests' simulated handlers.
    rate_limit_per_min: int = 6000
    cors_origins: str = ""
    allowed_hosts: str = "*"
    # Strict-Transport-Security max-age on HTTPS responses; 0 sends none. Off by default
    # because browsers remember it: turn it on once the host is served over TLS for good.
    hsts_seconds: int = Field(default=0, ge=0)
    ws_queue_max: int = 1000
    log_level: str = "INFO"
    # None: JSON lines when stdout is not a terminal (a service, a container), readable
    # coloured lines on a terminal. Set true or false to force either.
    log_json: bool | None = None
    # When set, GET /metrics asks for "Authorization: Bearer <token>" (for deployments
    # whose scrape path is not on an internal network).
    metrics_token: str | None = None
    areas_file: str | None = Field(default=None, description="GeoJSON loaded at start if set")
    # A raster tile layer drawn under the consoles' vector map, e.g. an organisation's own
    # tile server: "https://tiles.example.org/{z}/{x}/{y}.png". Unset: offline vector map.
    map_tile_url: str | None = None
    map_attribution: str = ""
    map_max_zoom: int = 19
    # History at intake: incidents this near in these many days; calls from the same
    # phone in these many days.
    history_radius_m: float = Field(default=50.0, gt=0, le=1000)
    history_location_days: int = Field(default=90, gt=0)
    history_phone_days: int = Field(default=30, gt=0)
    # Relevance search ranks among this many newest matches (bounded cost per query).
    search_candidates: int = Field(default=200, ge=20, le=100_000)

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url_has_an_origin(cls, value: str | None) -> str | None:
        # The CSP must name the tile server: a template it cannot name fails at start,
        # not as a blank map in every console.
        tile_origin(value)
        return value

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> Settings:
        if self.env == "production" and (
            self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32
        ):
            raise ValueError(
                "CAD_JWT_SECRET is the development default or shorter than 32 characters; "
                "set a real secret when CAD_ENV=production"
            )
        return self

    @property
    def auto_grades(self) -> frozenset[str] | None:
        if self.auto_dispatch_grades is None:
            return None
        return frozenset(g.strip() for g in self.auto_dispatch_grades.split(",") if g.strip())


@cache
def get_settings() -> Settings:
    return Settings()
