"""The HTTP service's own settings: keys, limits, proxies, the question log, WeChat. Safe defaults: no admin
access, no cross-origin access, no trusted proxy, WeChat off, until configured. Declared with kb.config.setting,
so the README's configuration table lists them too."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kb.config import PROJECT_ROOT, SettingError, setting
from server.clients import parse_networks
from server.querylog import LogTarget, log_target

_DEFAULT_QUERY_LOG: LogTarget = PROJECT_ROOT / "var" / "querylog.sqlite"


def _names(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class ServerSettings:
    admin_key: str = setting("KB_ADMIN_KEY", "", "bearer key for the admin endpoints (disabled without one)")
    cors_origins: tuple[str, ...] = setting(
        "KB_CORS_ORIGINS", (), "comma-separated origins allowed to call the API from a browser (none by default)",
        _names, shown="–")
    trusted_proxies: tuple[str, ...] = setting(
        "KB_TRUSTED_PROXIES", (),
        "comma-separated addresses or networks of reverse proxies whose `X-Forwarded-For` is believed "
        "(none by default: the peer address is the client)", _names, shown="–")
    max_question_chars: int = setting("KB_MAX_QUESTION_CHARS", 500, "longest question accepted, on every channel")
    conversation_ttl_s: float = setting(
        "KB_CONVERSATION_TTL", 600.0,
        "seconds a conversation's recent questions are kept for follow-up questions: how long an API "
        "`conversation_id` stays valid, and a WeChat user's (in memory, or in KB_QUERY_LOG's PostgreSQL)")
    conversation_secret: str = setting(
        "KB_CONVERSATION_SECRET", "",
        "secret that signs `conversation_id`s (which carry the conversation's masked recent questions) to the "
        "client they were issued to; set the same on every replica (random per process without one)",
        shown="random")
    max_concurrent: int = setting(
        "KB_MAX_CONCURRENT", os.cpu_count() or 2,
        "questions worked on at once (more only share the CPU); default: the number of CPU cores", shown="cores")
    max_waiting: int = setting("KB_MAX_WAITING", 32,
                               "questions that may wait for a turn; beyond that a fast 503 with Retry-After")
    max_wait_s: float = setting("KB_MAX_WAIT", 10.0, "seconds a question may wait for a turn before a 503")
    max_body_bytes: int = 64 * 1024
    #: Documents uploaded by staff (/api/admin/documents) may be larger.
    max_upload_bytes: int = 20 * 1024 * 1024
    rate_per_minute: float = setting("KB_RATE_PER_MINUTE", 60.0,
                                     "per-client (or per-WeChat-user) rate limit of the questions, per minute")
    rate_burst: int = setting("KB_RATE_BURST", 20, "requests a client may make at once before the rate applies")
    query_log: LogTarget = setting(
        "KB_QUERY_LOG", _DEFAULT_QUERY_LOG,
        "the question log for staff review: a SQLite file, or `postgresql://user:password@host:port/db` for one "
        "log shared by replicas (which then also share WeChat users' conversations and retries)", log_target,
        shown="`var/querylog.sqlite`")
    wechat_token: str = setting("KB_WECHAT_TOKEN", "",
                                "WeChat message push: the 服务器配置 Token (push is off without it)")
    wechat_app_id: str = setting("KB_WECHAT_APP_ID", "", "WeChat safe mode: the AppID")
    wechat_aes_key: str = setting("KB_WECHAT_AES_KEY", "", "WeChat safe mode: the 43-character EncodingAESKey")

    def __post_init__(self) -> None:
        """Refuse values the service cannot run with, naming the variable (one line, not a traceback)."""
        limits = {"KB_RATE_PER_MINUTE": self.rate_per_minute > 0, "KB_RATE_BURST": self.rate_burst >= 1,
                  "KB_MAX_CONCURRENT": self.max_concurrent >= 1, "KB_MAX_WAITING": self.max_waiting >= 0,
                  "KB_MAX_WAIT": self.max_wait_s > 0, "KB_CONVERSATION_TTL": self.conversation_ttl_s > 0,
                  "KB_MAX_QUESTION_CHARS": self.max_question_chars >= 1}
        for env, fine in limits.items():
            if not fine:
                raise SettingError(f"{env} must be positive" + (" or 0" if env == "KB_MAX_WAITING" else ""))
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingError(f"{exc}: an address or network such as 10.0.0.5 or 10.0.0.0/8") from exc
