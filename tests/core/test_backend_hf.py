"""The transformers backend on the tiny Qwen2.5-VL: real generate, real processor, real sandbox, real loop.

The tiny model is random, so multi-round tests script its tokens with the scripted
logits processor; everything else (prompt rendering, image processing of sandbox
images, stop strings, batching) is the real code path.
"""

from __future__ import annotations

import pytest
from PIL import Image

from vthinker_plugins.backend import GenerationRequest
from vthinker_plugins.loop import InteractionLoop, LoopConfig
from vthinker_plugins.protocol import DEFAULT_PROMPTS, IMAGE_PLACEHOLDER
from vthinker_plugins.sample import Sample

DRAW_1 = """<think>I mark the centre first.
<code>
```python
img = Image.open(image_path).convert("RGB")
d = ImageDraw.Draw(img)
d.ellipse((40, 40, 60, 60), fill="red")
img.save(processed_path)
print(processed_path)
```
</code>"""
DRAW_2 = """The red dot is there; now a line on the new image.
<code>
```python
img = Image.open(image_paths[-1]).convert("RGB")
ImageDraw.Draw(img).line((0, 0, 99, 79), fill="blue", width=3)
img.save(processed_path)
print(processed_path)
```
</code>"""
ANSWER = "Both drawings agree.</think>\n<answer>{answer}</answer>"


def _request(sample: Sample, prefix: str = "", images=None, max_new_tokens: int = 64, **kw) -> GenerationRequest:
    return GenerationRequest(
        key=f"{sample.id}#0",
        system=DEFAULT_PROMPTS.system,
        user=DEFAULT_PROMPTS.user_prompt(sample.question, len(sample.images)),
        assistant_prefix=prefix,
        images=list(images if images is not None else sample.images),
        max_new_tokens=max_new_tokens,
        sample=sample,
        **kw,
    )


def _sample(sid: str, question: str = "What is drawn?", n_images: int = 1, answer: str = "42") -> Sample:
    images = [Image.new("RGB", (100 + 20 * i, 80), (255, 255 - 40 * i, 255)) for i in range(n_images)]
    return Sample(id=sid, question=question, images=images, answer=answer, task="generic")


def test_two_rounds_with_sandbox_images_fed_back(scripted, monkeypatch) -> None:
    backend = scripted({"s1": [DRAW_1, DRAW_2, ANSWER], "s2": [DRAW_1, ANSWER]})
    seen_grids = []
    real_generate = backend.model.generate

    def spy(**kwargs):  # record what the real processor handed the real model, then run it
        seen_grids.append(kwargs["image_grid_thw"].shape[0])
        return real_generate(**kwargs)

    monkeypatch.setattr(backend.model, "generate", spy)
    samples = [_sample("s1", answer="42"), _sample("s2", "A longer question about the figure, please?", 2, "B")]
    loop = InteractionLoop(backend, config=LoopConfig(max_rounds=5, max_new_tokens=200))
    done = []
    trajs = loop.run(samples, on_result=done.append)
    by_id = {t.sample.id: t for t in trajs}
    t1, t2 = by_id["s1"], by_id["s2"]
    assert t1.error is None and t2.error is None, (t1.error, t2.error)
    assert [r.finish_reason for r in t1.rounds] == ["stop", "stop", "stop"]
    assert t1.rounds[0].text == DRAW_1 and t1.rounds[1].text == DRAW_2
    assert t1.n_tool_calls == 2 and t1.n_tool_errors == 0 and len(t1.tool_images) == 2
    assert t1.answer == "42" and t2.answer == "B" and t1.stop_reason == "answer"
    # The second sandbox image was drawn on the first one: red dot and blue line.
    second = t1.tool_images[1]
    assert second.getpixel((50, 50))[0] > 200 and second.getpixel((50, 50))[2] < 80
    assert second.getpixel((2, 2))[2] > 200 and second.getpixel((2, 2))[0] < 80
    assert t1.text.count(IMAGE_PLACEHOLDER) == 2
    # Round 1 batched both samples (1 + 2 images); s1's last round saw its input and both tool images.
    assert seen_grids[0] == 3 and 3 in seen_grids[1:]
    assert len(done) == 2


def test_stop_string_is_kept_and_cut(scripted) -> None:
    sample = _sample("cut")
    backend = scripted({"cut": ["<think>x</think><answer>7</answer> trailing text that must go"]})
    out = backend.generate([_request(sample)])[0]
    assert out.text == "<think>x</think><answer>7</answer>" and out.finish_reason == "stop"
    assert backend.tokenizer.decode(out.token_ids).startswith(out.text)


def test_end_of_turn_and_length(scripted) -> None:
    sample_a, sample_b = _sample("eot"), _sample("long", "Another question with more words in it?")
    backend = scripted({"eot": ["no stop string here"], "long": ["word " * 50]})
    outs = backend.generate([_request(sample_a, max_new_tokens=40), _request(sample_b, max_new_tokens=5)])
    assert outs[0].text == "no stop string here" and outs[0].finish_reason == "eos"
    assert outs[1].finish_reason == "length" and len(outs[1].token_ids) == 5


def test_free_generation_never_emits_vision_tokens(hf_backend) -> None:
    sample = _sample("free")
    outs = hf_backend.generate([_request(sample, max_new_tokens=48), _request(_sample("free2", "Why?"),
                                                                             max_new_tokens=48)])
    for out in outs:
        assert out.finish_reason in ("stop", "eos", "length")
        assert not set(out.token_ids) & set(hf_backend.suppress_ids)
        assert "<|image_pad|>" not in out.text and "<|im_start|>" not in out.text


def test_left_padded_batch_matches_single_requests(hf_backend) -> None:
    short, longer = _sample("p1", "Hi?"), _sample("p2", "A much longer question that pads the other row?", 2)
    alone = [hf_backend.generate([_request(s, max_new_tokens=8)])[0].token_ids for s in (short, longer)]
    batched = [o.token_ids for o in hf_backend.generate([_request(short, max_new_tokens=8),
                                                         _request(longer, max_new_tokens=8)])]
    assert batched == alone


def test_image_count_mismatch_is_a_clear_error(hf_backend) -> None:
    sample = _sample("bad")
    with pytest.raises(ValueError, match="bad#0: the prompt has 1 image placeholder"):
        hf_backend.generate([_request(sample, images=[])])


def test_pixel_bounds_use_smart_resize(tiny_model_dir) -> None:
    from vthinker_plugins.backends import make_backend

    backend = make_backend(str(tiny_model_dir), device="cpu", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    image = backend.prepare_image(Image.new("RGB", (500, 300)))
    assert image.width % 28 == 0 and image.height % 28 == 0
    assert 28 * 28 * 4 <= image.width * image.height <= 28 * 28 * 16
    ids = backend.observation_token_ids("\n<sandbox_output><image></sandbox_output>\n", [image])
    pad = backend.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert ids.count(pad) == image.width * image.height // (28 * 28)


# --------------------------------------------------------------------------- token-level rounds

def _spy_inputs(backend, monkeypatch) -> list[list[list[int]]]:
    """Record, per generate call, each row's input ids without its left padding; then run the real model."""
    seen: list[list[list[int]]] = []
    real_generate = backend.model.generate

    def spy(**kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        seen.append([row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)])
        return real_generate(**kwargs)

    monkeypatch.setattr(backend.model, "generate", spy)
    return seen


def _encode(backend, text: str, images=()) -> list[int]:
    kwargs = {"images": [backend.prepare_image(im) for im in images]} if images else {}
    return backend.processor(text=[text], return_tensors="pt", **kwargs)["input_ids"][0].tolist()


def test_each_round_generates_from_prompt_generated_and_observation_ids(scripted, monkeypatch) -> None:
    from vthinker_plugins.chat import build_prompt, expand_placeholders

    backend = scripted({"seg": [DRAW_1, DRAW_2, ANSWER]})
    seen = _spy_inputs(backend, monkeypatch)
    sample = _sample("seg")
    (traj,) = InteractionLoop(backend, config=LoopConfig(max_rounds=5, max_new_tokens=200)).run([sample])
    assert traj.error is None and traj.answer == "42" and len(traj.rounds) == 3 and len(traj.tool_images) == 2
    assert backend.tokens.get("seg#0") is None  # the loop released the trajectory's state

    prompt_ids = _encode(backend, build_prompt(backend.processor, traj.system, traj.user), sample.images)
    r1, r2 = traj.rounds[0], traj.rounds[1]
    # Generated ids are the script's ids as sampled; each observation is encoded on its own with its image.
    assert r1.gen_token_ids == backend.tokenizer.encode(DRAW_1, add_special_tokens=False)
    for rnd, image in ((r1, traj.tool_images[0]), (r2, traj.tool_images[1])):
        assert rnd.observation == "\n<sandbox_output><image></sandbox_output>\n"
        assert rnd.obs_token_ids == _encode(backend, expand_placeholders(backend.processor, rnd.observation), [image])
    assert [len(call) for call in seen] == [1, 1, 1]
    assert seen[0][0] == prompt_ids
    assert seen[1][0] == prompt_ids + r1.gen_token_ids + r1.obs_token_ids
    assert seen[2][0] == prompt_ids + r1.gen_token_ids + r1.obs_token_ids + r2.gen_token_ids + r2.obs_token_ids


def test_sampled_ids_are_continued_where_retokenising_the_text_would_differ(scripted, monkeypatch) -> None:
    """A model may sample a non-canonical split (" " + "a" where BPE has " a"): re-encoding the turn as
    text would show it other tokens than it produced. The backend continues the ids it sampled."""
    backend = scripted({"bpe": ["unused"]})
    tok = backend.tokenizer
    space, a, space_a = (tok.convert_tokens_to_ids(t) for t in ("Ġ", "a", "Ġa"))
    assert tok.encode(" a", add_special_tokens=False) == [space_a]  # the merge the text path would apply
    sampled = [
        *tok.encode("<think>I see", add_special_tokens=False), space, a,
        *tok.encode(" circle.\n<code>\nprint(1)\n</code>", add_special_tokens=False),
    ]
    monkeypatch.setattr(backend, "script_token_ids", lambda req: sampled if not req.assistant_prefix else None)
    seen = _spy_inputs(backend, monkeypatch)
    sample = _sample("bpe")
    first = backend.generate([_request(sample, max_new_tokens=len(sampled) + 4)])[0]
    assert first.finish_reason == "stop" and first.text == "<think>I see a circle.\n<code>\nprint(1)\n</code>"
    assert first.token_ids == sampled

    tool_image = Image.new("RGB", (64, 64), "blue")
    observation = "\n<sandbox_output><image></sandbox_output>\n"
    obs_ids = backend.observation_token_ids(observation, [tool_image])  # as the loop does
    second = _request(sample, first.text + observation, [*sample.images, tool_image], max_new_tokens=4)
    backend.generate([second])
    backend.release(second.key)

    prompt_ids = seen[0][0]
    assert seen[1][0] == prompt_ids + sampled + obs_ids
    # The old text path: render prompt + prefix and re-tokenise the whole.
    retokenised = _encode(backend, backend.prompt_text(second), second.images)
    assert retokenised != seen[1][0] and len(retokenised) == len(seen[1][0]) - 1
    assert retokenised[len(prompt_ids):len(prompt_ids) + len(sampled) - 1].count(space_a) == 1


def test_last_token_past_the_stop_string_is_cut_to_it(scripted, monkeypatch) -> None:
    """The tiny vocabulary has "></": a row can complete </code> with a token that runs past it."""
    backend = scripted({"past": ["unused"]})
    tok = backend.tokenizer
    head = tok.encode("<code>\nprint(1)\n</code", add_special_tokens=False)
    monkeypatch.setattr(backend, "script_token_ids", lambda req: [*head, tok.convert_tokens_to_ids("></")])
    sample = _sample("past")
    out = backend.generate([_request(sample)])[0]
    assert out.text == "<code>\nprint(1)\n</code>" and out.finish_reason == "stop"
    assert out.token_ids == [*head, tok.convert_tokens_to_ids(">")]
    assert backend.tokens.get(f"{sample.id}#0").ids[-len(out.token_ids):] == out.token_ids
    backend.release(f"{sample.id}#0")
    assert backend.tokens.get(f"{sample.id}#0") is None


def test_prefix_without_state_is_encoded_as_text_once(scripted, monkeypatch) -> None:
    """A resumed conversation: no state for the key, a non-empty prefix. It is encoded as text once
    (prompt segment + prefix segment); the following round extends those ids token-wise."""
    backend = scripted({"resume": [DRAW_1, "More.\n<code>\nprint(2)\n</code>", ANSWER]})
    seen = _spy_inputs(backend, monkeypatch)
    sample = _sample("resume")
    tool_image = Image.new("RGB", (64, 64), "green")
    observation = "\n<sandbox_output><image></sandbox_output>\n"
    prefix, images = DRAW_1 + observation, [*sample.images, tool_image]
    out = backend.generate([_request(sample, prefix, images)])[0]
    assert out.text == "More.\n<code>\nprint(2)\n</code>" and out.finish_reason == "stop"
    from vthinker_plugins.chat import build_prompt, expand_observation_images

    req = _request(sample, prefix, images)
    prompt_ids = _encode(backend, build_prompt(backend.processor, req.system, req.user), sample.images)
    prefix_ids = _encode(backend, expand_observation_images(backend.processor, prefix), [tool_image])
    assert seen[0][0] == prompt_ids + prefix_ids

    text_obs = "\n<sandbox_output>2</sandbox_output>\n"
    obs_ids = backend.observation_token_ids(text_obs, [])
    backend.generate([_request(sample, prefix + out.text + text_obs, images)])
    assert seen[1][0] == prompt_ids + prefix_ids + out.token_ids + obs_ids
    backend.release(f"{sample.id}#0")


def test_scripted_spec_is_the_hf_backend_with_forced_tokens(scripted_backend, tiny_model_dir) -> None:
    """``scripted:PATH`` loads the real checkpoint; without ``script=`` it is a clear error, and a missing
    checkpoint behind the prefix fails the quick model check like a plain path."""
    from vthinker_plugins.backends import ModelUnavailable, check_model, make_backend
    from vthinker_plugins.backends.hf import HFBackend

    assert isinstance(scripted_backend, HFBackend) and scripted_backend.model_path == str(tiny_model_dir)
    with pytest.raises(ValueError, match=r"scripted:.* needs script=PATH"):
        make_backend(f"scripted:{tiny_model_dir}", device="cpu")
    check_model(f"scripted:{tiny_model_dir}")
    with pytest.raises(ModelUnavailable, match="no such checkpoint folder"):
        check_model(f"scripted:{tiny_model_dir}/missing")
    with pytest.raises(TypeError, match="script"):
        make_backend(str(tiny_model_dir), device="cpu", script={"*": ["x"]})  # production backends take no script


def test_backend_specs_from_other_packages_are_entry_points(tiny_model_dir) -> None:
    """``scripted:`` reaches ``make_backend`` as an entry point of the installed package (no production module
    names the test tooling); an unregistered ``NAME:`` prefix fails the model check naming the known specs."""
    from vthinker_plugins.backends import ModelUnavailable, check_model, registered_backend
    from vthinker_plugins.testing.scripted import make_scripted_backend

    entry_point, path = registered_backend(f"scripted:{tiny_model_dir}")
    assert entry_point.group == "vthinker_plugins.backends" and path == str(tiny_model_dir)
    assert entry_point.load() is make_scripted_backend
    assert registered_backend(f"vllm:{tiny_model_dir}") is None and registered_backend(str(tiny_model_dir)) is None
    with pytest.raises(ModelUnavailable, match=r"scriptd: is no backend spec \(known: openai:, scripted:, vllm:\)"):
        check_model(f"scriptd:{tiny_model_dir}")
