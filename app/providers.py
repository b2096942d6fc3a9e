"""Generation providers: a deterministic local generator, and OpenAI/Anthropic over HTTP."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Protocol

import httpx

from app.settings import Settings

TARGET_WORDS = {"short": 150, "medium": 400, "long": 800}


class ProviderError(RuntimeError):
    """The provider failed or answered with something unusable (HTTP 502)."""


class ProviderTimeout(ProviderError):
    """The provider did not answer in time (HTTP 504)."""


@dataclass(frozen=True)
class GenerationRequest:
    topic: str
    content_type: str
    tone: str
    length: str


@dataclass(frozen=True)
class GenerationResult:
    title: str
    body: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


class Provider(Protocol):
    name: str
    model: str

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...


def estimate_tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


def build_prompt(req: GenerationRequest) -> str:
    words = TARGET_WORDS[req.length]
    kind = req.content_type.replace("_", " ")
    return (
        f"Write a {kind} for AquaScene, an aquascaping and planted-aquarium publication, "
        f"about: {req.topic}. Tone: {req.tone}. Length: about {words} words. "
        "Put the title alone on the first line, then the body in Markdown."
    )


def split_title_body(text: str) -> tuple[str, str]:
    lines = text.strip().splitlines()
    if not lines:
        raise ProviderError("provider returned empty content")
    title = re.sub(r"^(#+\s*|\*\*|title:\s*)", "", lines[0].strip(), flags=re.I).strip("* ").strip()
    body = "\n".join(lines[1:]).strip()
    if not title or not body:
        raise ProviderError("provider returned content without a title and a body")
    return title[:200], body[:100_000]


# --- local deterministic generator ------------------------------------------

_OPENERS = [
    "Few things transform a planted tank like {topic}.",
    "If you have ever wondered about {topic}, you are in good company.",
    "{Topic} sits at the heart of a healthy aquascape.",
    "Every aquascaper eventually faces the question of {topic}.",
]
_POINTS = [
    "Start with stable water parameters: consistent temperature, pH and hardness matter more than chasing exact numbers.",
    "Light, CO2 and nutrients work as a triangle; raising one without the others invites algae.",
    "Choose plants for the light you actually have, and let slow growers fill the shaded corners.",
    "Hardscape sets the composition, so place stones and wood before a single plant goes in.",
    "Weekly water changes of thirty to fifty percent keep organics low and livestock thriving.",
    "Patience pays: a tank that is allowed to mature for six weeks rewards you for years.",
    "Observe your fish daily; behaviour changes are the earliest warning of trouble.",
    "Trim stem plants often and replant the tops to build dense, bushy groups.",
    "Keep a simple log of changes so you can trace cause and effect.",
    "Clean filters gently in tank water to protect the bacteria colony that keeps the cycle stable.",
]
_CLOSERS = [
    "Take it one step at a time and enjoy the process.",
    "Share your progress with the community; every tank teaches something new.",
    "Small, steady improvements add up to a remarkable aquascape.",
]
_TONE_LINES = {
    "friendly": "Grab a coffee and let's dive in together.",
    "professional": "The following recommendations reflect current best practice.",
    "enthusiastic": "This is one of the most exciting parts of the hobby!",
    "educational": "Let's look at the principles behind it.",
}


class LocalProvider:
    """Deterministic template-based generator: no network, no cost."""

    name = "local"
    model = "aquascene-template-v1"

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        seed = hashlib.sha256(
            f"{request.topic}|{request.content_type}|{request.tone}|{request.length}".encode()
        ).digest()
        rng = random.Random(seed)
        topic = request.topic.strip()
        fmt = {"topic": topic.lower(), "Topic": topic[:1].upper() + topic[1:]}
        target = TARGET_WORDS[request.length]
        points = rng.sample(_POINTS, k=len(_POINTS))
        tone_line = _TONE_LINES.get(request.tone.lower(), f"Written in a {request.tone} voice.")
        opener = rng.choice(_OPENERS).format(**fmt)
        closer = rng.choice(_CLOSERS)

        if request.content_type == "instagram_post":
            title = f"{fmt['Topic']} in a nutshell"[:200]
            tags = " ".join(f"#{w}" for w in re.findall(r"[a-z0-9]+", topic.lower())[:5])
            body = f"{opener} {tone_line}\n\n" + "\n".join(f"- {p}" for p in points[:3])
            body += f"\n\n{closer}\n\n{tags} #aquascape #plantedtank #aquascene"
        else:
            title = {
                "article": f"{fmt['Topic']}: What Every Aquascaper Should Know",
                "newsletter": f"This Week at AquaScene: {fmt['Topic']}",
                "guide": f"A Step-by-Step Guide to {fmt['Topic']}",
            }[request.content_type][:200]
            sections = [f"{opener} {tone_line}"]
            words = len(sections[0].split())
            index = 0
            while words < target:
                point = points[index % len(points)]
                heading = (
                    f"## Step {index + 1}" if request.content_type == "guide" else f"## {point.split(':')[0].split(',')[0]}"
                )
                paragraph = f"{point} When it comes to {fmt['topic']}, this matters more than most people expect."
                sections.append(f"{heading}\n\n{paragraph}")
                words += len(paragraph.split()) + 3
                index += 1
            sections.append(closer)
            body = "\n\n".join(sections)

        prompt = build_prompt(request)
        return GenerationResult(
            title=title,
            body=body,
            provider=self.name,
            model=self.model,
            input_tokens=estimate_tokens(prompt),
            output_tokens=estimate_tokens(title + " " + body),
            cost_usd=0.0,
        )


# --- HTTP providers -----------------------------------------------------------


class _HttpProvider:
    name = "http"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    def _cost(self, input_tokens: int, output_tokens: int) -> float:
        s = self.settings
        cost = input_tokens / 1000 * s.provider_input_cost_per_1k + output_tokens / 1000 * s.provider_output_cost_per_1k
        return round(cost, 6)

    async def _post(self, url: str, headers: dict[str, str], payload: dict) -> dict:
        try:
            response = await self.client.post(
                url, headers=headers, json=payload, timeout=self.settings.generation_timeout_seconds
            )
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{self.name} did not answer within {self.settings.generation_timeout_seconds:g}s") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.name} request failed: {exc.__class__.__name__}") from exc
        if response.status_code >= 400:
            raise ProviderError(f"{self.name} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(f"{self.name} answered with invalid JSON") from exc


class OpenAIProvider(_HttpProvider):
    name = "openai"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.model = settings.openai_model

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        data = await self._post(
            f"{self.settings.openai_base_url.rstrip('/')}/chat/completions",
            {"Authorization": f"Bearer {self.settings.openai_api_key}"},
            {
                "model": self.model,
                "messages": [
                    {"role": "system", "content": "You write accurate, engaging aquascaping content."},
                    {"role": "user", "content": build_prompt(request)},
                ],
                "max_tokens": TARGET_WORDS[request.length] * 2,
            },
        )
        try:
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
            input_tokens = int(usage.get("prompt_tokens") or estimate_tokens(build_prompt(request)))
            output_tokens = int(usage.get("completion_tokens") or estimate_tokens(text))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError("openai answered with an unexpected payload") from exc
        title, body = split_title_body(text)
        return GenerationResult(
            title, body, self.name, self.model, input_tokens, output_tokens, self._cost(input_tokens, output_tokens)
        )


class AnthropicProvider(_HttpProvider):
    name = "anthropic"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.model = settings.anthropic_model

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        data = await self._post(
            f"{self.settings.anthropic_base_url.rstrip('/')}/messages",
            {"x-api-key": self.settings.anthropic_api_key or "", "anthropic-version": "2023-06-01"},
            {
                "model": self.model,
                "max_tokens": TARGET_WORDS[request.length] * 2,
                "system": "You write accurate, engaging aquascaping content.",
                "messages": [{"role": "user", "content": build_prompt(request)}],
            },
        )
        try:
            text = "".join(block.get("text", "") for block in data["content"] if block.get("type") == "text")
            usage = data.get("usage") or {}
            input_tokens = int(usage.get("input_tokens") or estimate_tokens(build_prompt(request)))
            output_tokens = int(usage.get("output_tokens") or estimate_tokens(text))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProviderError("anthropic answered with an unexpected payload") from exc
        title, body = split_title_body(text)
        return GenerationResult(
            title, body, self.name, self.model, input_tokens, output_tokens, self._cost(input_tokens, output_tokens)
        )


def create_provider(settings: Settings, client: httpx.AsyncClient) -> Provider:
    if settings.resolved_provider == "openai":
        return OpenAIProvider(settings, client)
    if settings.resolved_provider == "anthropic":
        return AnthropicProvider(settings, client)
    return LocalProvider()


# --- quality score --------------------------------------------------------------


def quality_score(title: str, body: str, topic: str, content_type: str, length: str) -> float:
    """Heuristic 0-10 score: length fit, structure, vocabulary, topic focus, readability."""
    words = re.findall(r"[A-Za-z']+", body)
    if not words:
        return 0.0
    target = 60 if content_type == "instagram_post" else TARGET_WORDS[length]
    length_fit = max(0.0, 1.0 - abs(len(words) - target) / target)
    paragraphs = [p for p in body.split("\n\n") if p.strip()]
    structure = min(1.0, len(paragraphs) / (3 if content_type == "instagram_post" else 5))
    lowered = [w.lower() for w in words]
    diversity = min(1.0, len(set(lowered)) / len(lowered) / 0.5)
    topic_words = {w for w in re.findall(r"[a-z]+", topic.lower()) if len(w) > 3} or {topic.lower()}
    text = (title + " " + body).lower()
    focus = sum(1 for w in topic_words if w in text) / len(topic_words)
    sentences = [s for s in re.split(r"[.!?]+", body) if s.strip()]
    avg_sentence = len(words) / max(1, len(sentences))
    readability = 1.0 if 8 <= avg_sentence <= 22 else max(0.0, 1.0 - abs(avg_sentence - 15) / 30)
    title_ok = 1.0 if 10 <= len(title) <= 90 else 0.5
    score = 10 * (
        0.25 * length_fit + 0.15 * structure + 0.2 * diversity + 0.2 * focus + 0.15 * readability + 0.05 * title_ok
    )
    return round(min(10.0, max(0.0, score)), 1)
