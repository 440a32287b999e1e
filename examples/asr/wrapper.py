"""asr: streaming English speech recognition with pocketsphinx.

Input: frames of 16 kHz 16-bit mono little-endian PCM in ``payload.audio`` (encoding ``raw``).
Output ``result`` (text): after a frame, the partial hypothesis when it changed (status 1, returned
by ``wrapperRead``); after the last frame, the final text (status 2), pushed from a thread with
``ase_serving.wrapper.callback`` because finishing an utterance (``end_utt``) runs the decoder's
last search pass, which should not hold up the frame that carried the end of the audio.

Each session has its own decoder, created in ``wrapperCreate`` and dropped in ``wrapperDestroy``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

from pocketsphinx import Decoder, get_model_path

from ase_serving.wrapper import callback

log = logging.getLogger("asr")

ERR_MODEL = 20201
ERR_FORMAT = 20202
ERR_NO_AUDIO = 20203
ERR_NO_SESSION = 20204
ERR_DECODER = 20205

ERRORS = {
    ERR_MODEL: "the pocketsphinx model cannot be loaded: check [wrapper] model_dir in ase.toml "
    "(a folder holding en-us/, en-us.lm.bin and cmudict-en-us.dict)",
    ERR_FORMAT: "audio must be 16 kHz 16-bit mono PCM: send payload.audio with encoding raw "
    "and sample_rate 16000",
    ERR_NO_AUDIO: "no audio received in this session: send at least one non-empty audio frame",
    ERR_NO_SESSION: "no such session (it has ended)",
    ERR_DECODER: "the recogniser failed on this audio",
}

SAMPLE_RATE = "16000"
ENCODINGS = ("raw", "pcm", "")

#: Decoder(**model) keyword arguments, set by wrapperInit.
model: dict[str, str] = {}
sessions: dict[str, Session] = {}
sessions_lock = threading.Lock()
ids = itertools.count(1)


class Session:
    """One utterance: its own decoder and what has been sent of it so far."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.lock = threading.Lock()  # the final-result thread and wrapperDestroy both use it
        self.last = ""  # the last partial text sent
        self.audio_bytes = 0
        self.odd = b""  # a byte left over when a frame split a 16-bit sample
        self.ending = False
        self.closed = False


def model_files(model_dir: Path) -> dict[str, str]:
    """The acoustic model, language model and dictionary in ``model_dir`` (the package's layout)."""
    return {
        "hmm": str(model_dir / "en-us"),
        "lm": str(model_dir / "en-us.lm.bin"),
        "dict": str(model_dir / "cmudict-en-us.dict"),
    }


def wrapperInit(config: dict) -> int:
    model_dir = Path(config.get("model_dir") or Path(get_model_path()) / "en-us")
    files = model_files(model_dir)
    missing = [path for path in files.values() if not Path(path).exists()]
    if missing:
        log.error("asr: model files missing: %s", ", ".join(missing))
        return ERR_MODEL
    model.clear()
    model.update(files)
    try:
        Decoder(**model)  # load once now, so a broken model fails at start-up, not per session
    except Exception as exc:
        log.error("asr: cannot load the model in %s: %s", model_dir, exc)
        return ERR_MODEL
    return 0


def wrapperFini() -> int:
    with sessions_lock:
        sessions.clear()
    return 0


def wrapperCreate(usrTag: str, params: dict, psrIds: list, psrCnt: int) -> str:
    decoder = Decoder(**model)
    decoder.start_utt()
    handle = f"asr-{next(ids)}"
    with sessions_lock:
        sessions[handle] = Session(decoder)
    return handle


def wrapperWrite(handle: str, datas: list) -> int:
    with sessions_lock:
        s = sessions.get(handle)
    if s is None or s.ending:
        return ERR_NO_SESSION
    for item in datas:
        desc = item["desc"]
        if (
            item["type"] != 1
            or desc.get("encoding", "") not in ENCODINGS
            or desc.get("sample_rate", SAMPLE_RATE) != SAMPLE_RATE
        ):
            return ERR_FORMAT
        pcm = s.odd + item["data"]
        cut = len(pcm) - len(pcm) % 2
        s.odd = pcm[cut:]
        if cut:
            s.decoder.process_raw(pcm[:cut], False, False)
            s.audio_bytes += cut
        if item["status"] == 2:
            s.ending = True
    if s.ending:
        threading.Thread(target=finish, args=(handle, s), name=f"{handle}-final", daemon=True).start()
    return 0


def wrapperRead(handle: str) -> list:
    with sessions_lock:
        s = sessions.get(handle)
    if s is None or s.ending:
        return []  # after the last frame the final result comes from finish()
    hyp = s.decoder.hyp()
    text = hyp.hypstr if hyp is not None else ""
    if not text or text == s.last:
        return []
    s.last = text
    return [result(text, status=1)]


def wrapperDestroy(handle: str) -> int:
    with sessions_lock:
        s = sessions.pop(handle, None)
    if s is not None:
        with s.lock:  # wait for a running end_utt; finish() sees `closed` and pushes nothing
            s.closed = True
    return 0


def wrapperError(ret: int) -> str:
    return ERRORS.get(ret, f"unknown error {ret}")


def result(text: str, status: int) -> dict:
    data = text.encode("utf-8")
    desc = {"encoding": "utf8", "format": "plain"}
    return {"key": "result", "data": data, "len": len(data), "status": status, "type": 0, "desc": desc}


def finish(handle: str, s: Session) -> None:
    """Runs in its own thread after the last frame: end the utterance, push the final text."""
    with s.lock:
        if s.closed:
            return
        if s.audio_bytes == 0:
            items, ret = [], ERR_NO_AUDIO
        else:
            try:
                s.decoder.end_utt()
                hyp = s.decoder.hyp()
                items, ret = [result(hyp.hypstr if hyp is not None else "", status=2)], 0
            except Exception as exc:
                log.error("asr: end_utt failed in %s: %s", handle, exc)
                items, ret = [], ERR_DECODER
    try:
        callback(handle, items, ret)
    except Exception as exc:  # nobody to report to from this thread but the log
        log.error("asr: could not deliver the final result of %s: %s", handle, exc)
