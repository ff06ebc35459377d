"""Settings read from a TOML file under the environment and the caller's own values, as
device and central settings both are; a file that cannot be used is one ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

from config.errors import ConfigError, describe


class FileSettings(BaseSettings):
    """Settings whose values come from the caller (flags), else the environment, else a
    TOML file (`load`), else their defaults."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The caller's values override the environment, which overrides the file."""
        toml_file = init_settings.init_kwargs.pop("_toml_file", None)  # type: ignore[attr-defined]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, path: Path | None, *, skip: frozenset[str] = frozenset(), **given: Any) -> Self:
        """The settings from the file at `path` (none: the environment alone) under the
        environment and `given`; ConfigError names every problem by key path (`skip`: the
        union tags pydantic puts in a path, see `describe`)."""
        source = str(path) if path is not None else "environment"
        if path is not None and not path.is_file():
            raise ConfigError(source, ["file not found"])
        try:
            return cls(_toml_file=path, **given)  # type: ignore[call-arg]  # read by the sources
        except ValidationError as exc:
            raise ConfigError(source, [describe(e, skip) for e in exc.errors()]) from None
        except (ValueError, OSError) as exc:  # TOML syntax errors arrive as ValueError
            raise ConfigError(source, [str(exc)]) from None
