"""Drives a running `paradit serve` with the official OpenAI Python client (pip package `openai`).

Started by tests/server/test_openai_client.cpp, which starts the server, runs this script with the
venv's python and then checks what it wrote: every answer's files are saved under --out and
summarised in --out/results.json; the pixel checks (decoding PNG/JPEG/WebP/MP4, comparing with
`paradit generate`) are done by the C++ test with libpng and FFmpeg, not here.

    python openai_client.py --base-url http://127.0.0.1:PORT/v1 --out DIR --mode image|video
        --prompt TEXT [--size WxH] [--model ID]

Exit code 0 when every call behaved as an OpenAI client expects (a call that should fail raised
the right exception class); anything else raises, so the test sees a non-zero exit and the
traceback on stderr.
"""

import argparse
import base64
import json
import os
import sys
import threading
import time
import urllib.request

import openai
from openai import OpenAI


def save(path, data):
    with open(path, "wb") as f:
        f.write(data)


def api_error(call):
    """Runs `call`, which must fail with an OpenAI APIStatusError: its status and error body."""
    try:
        call()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"status": e.status_code, "class": type(e).__name__,
                "error": body.get("error", body)}
    raise AssertionError("the call succeeded; an API error was expected")


def in_threads(*calls):
    """Runs the calls at once (so a data-parallel server spreads them over its groups)."""
    results = [None] * len(calls)
    errors = []

    def run(i, call):
        try:
            results[i] = call()
        except BaseException as e:  # re-raised below, in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def image_mode(client, args, out):
    results = {}
    model_id = args.model
    paradit = {"num_inference_steps": 2, "seed": 7, "guidance_scale": 3.0}

    listed = client.models.list()
    results["models"] = [m.id for m in listed.data]
    results["model_retrieved"] = client.models.retrieve(model_id).id

    # n=2 in both response formats, at the same time.
    def b64():
        return client.images.generate(model=model_id, prompt=args.prompt, n=2, size=args.size,
                                      response_format="b64_json", extra_body=paradit)

    def url():
        return client.images.generate(model=model_id, prompt=args.prompt, n=2, size=args.size,
                                      response_format="url", extra_body=paradit)

    r_b64, r_url = in_threads(b64, url)
    results["b64"] = {"size": r_b64.size, "output_format": r_b64.output_format, "files": []}
    for i, d in enumerate(r_b64.data):
        name = "b64_%d.png" % i
        save(os.path.join(out, name), base64.b64decode(d.b64_json))
        results["b64"]["files"].append(name)
    results["url"] = {"size": r_url.size, "files": [], "urls": []}
    for i, d in enumerate(r_url.data):
        name = "url_%d.png" % i
        with urllib.request.urlopen(d.url, timeout=30) as answer:
            results["url"].setdefault("content_types", []).append(
                answer.headers.get("Content-Type"))
            save(os.path.join(out, name), answer.read())
        results["url"]["files"].append(name)
        results["url"]["urls"].append(d.url)

    # Each output format, with the OpenAI fields paradit accepts and ignores, and a field no
    # version of the API has (ignored, named once in the server log).
    # 12 steps: a clean image (2 steps leave noise that JPEG's chroma subsampling cannot keep).
    def encoded(fmt, compression=90):
        def call():
            return client.images.generate(
                model=model_id, prompt=args.prompt, size=args.size, output_format=fmt,
                output_compression=compression, quality="high", background="auto", moderation="low",
                style="vivid", user="abc",
                extra_body={"num_inference_steps": 12, "seed": 7, "paradit_test_unknown_field": 1})
        return call

    r_jpeg, r_webp, r_png, r_lossless = in_threads(encoded("jpeg"), encoded("webp"),
                                                   encoded("png"), encoded("webp", 100))
    for name, r in (("jpeg", r_jpeg), ("webp", r_webp), ("png", r_png),
                    ("lossless.webp", r_lossless)):
        save(os.path.join(out, "format." + name), base64.b64decode(r.data[0].b64_json))
        results["format_" + name] = {"output_format": r.output_format, "size": r.size}

    # Streaming with two previews, twice at once (under mpirun both groups stream one), then the
    # same request without streaming.
    stream_args = {"num_inference_steps": 4, "seed": 3}

    def stream(tag):
        def call():
            events = []
            answer = client.images.generate(model=model_id, prompt=args.prompt, size=args.size,
                                            stream=True, partial_images=2,
                                            extra_body=stream_args)
            for k, event in enumerate(answer):
                name = "%s_event_%d.png" % (tag, k)
                save(os.path.join(out, name), base64.b64decode(event.b64_json))
                events.append({"type": event.type, "file": name,
                               "partial_image_index": getattr(event, "partial_image_index", None),
                               "size": event.size, "output_format": event.output_format})
            return events
        return call

    results["stream_a"], results["stream_b"] = in_threads(stream("stream_a"), stream("stream_b"))
    r_plain = client.images.generate(model=model_id, prompt=args.prompt, size=args.size,
                                     extra_body=stream_args)
    save(os.path.join(out, "nonstream.png"), base64.b64decode(r_plain.data[0].b64_json))

    # Limits and a wrong model: refused before anything is queued.
    results["over_max_pixels"] = api_error(lambda: client.images.generate(
        model=model_id, prompt=args.prompt, size="1024x1024"))
    results["over_max_n"] = api_error(lambda: client.images.generate(
        model=model_id, prompt=args.prompt, size=args.size, n=args.max_n + 1))
    results["over_max_steps"] = api_error(lambda: client.images.generate(
        model=model_id, prompt=args.prompt, size=args.size,
        extra_body={"num_inference_steps": args.max_steps + 1}))
    results["bad_format"] = api_error(lambda: client.images.generate(
        model=model_id, prompt=args.prompt, output_format="gif"))
    results["wrong_model"] = api_error(lambda: client.images.generate(
        model="dall-e-3", prompt=args.prompt))
    results["wrong_model_retrieve"] = api_error(lambda: client.models.retrieve("dall-e-3"))
    return results


def video_mode(client, args, out):
    results = {}
    model_id = args.model
    listed = client.models.list()
    results["models"] = [m.id for m in listed.data]
    # seconds · fps = 4 frames, on the VAE's 4k+1 grid: 5 frames. The client sends a multipart
    # form; the paradit fields travel in it as text.
    paradit = {"num_inference_steps": 3, "seed": 11, "fps": 8}

    def make():
        video = client.videos.create(model=model_id, prompt=args.prompt, size=args.size,
                                     seconds="0.5", extra_body=paradit)
        first = {"id": video.id, "status": video.status, "progress": video.progress}
        seen = []
        deadline = time.time() + 120
        while video.status in ("queued", "in_progress") and time.time() < deadline:
            time.sleep(0.05)
            video = client.videos.retrieve(video.id)
            seen.append([video.status, video.progress])
        return first, seen, video

    (first_a, seen_a, video_a), (first_b, _, video_b) = in_threads(make, make)
    results["created"] = first_a
    results["progress_seen"] = seen_a
    results["final"] = video_a.to_dict()
    results["final_b"] = video_b.to_dict()
    for tag, video in (("a", video_a), ("b", video_b)):
        content = client.videos.download_content(video.id)
        save(os.path.join(out, "video_%s.mp4" % tag), content.content)
    results["listed"] = [v.id for v in client.videos.list().data]

    deleted = client.videos.delete(video_b.id)
    results["deleted"] = {"id": deleted.id, "deleted": deleted.deleted, "object": deleted.object}
    results["retrieve_deleted"] = api_error(lambda: client.videos.retrieve(video_b.id))

    results["over_max_frames"] = api_error(lambda: client.videos.create(
        model=model_id, prompt=args.prompt, size=args.size, seconds="12"))
    results["over_max_pixels"] = api_error(lambda: client.videos.create(
        model=model_id, prompt=args.prompt, size="1792x1024"))
    results["wrong_model"] = api_error(lambda: client.videos.create(
        model="sora-2", prompt=args.prompt, size=args.size))
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", choices=("image", "video"), required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--max-n", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=200)
    args = parser.parse_args()
    # No retries: a 429/5xx must show, not be retried away.
    client = OpenAI(base_url=args.base_url, api_key="none", max_retries=0, timeout=120)
    results = {"openai_version": openai.__version__}
    if args.mode == "image":
        results.update(image_mode(client, args, args.out))
    else:
        results.update(video_mode(client, args, args.out))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
