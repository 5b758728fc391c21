"""An FTP client for the recordings namespace tests, run inside a camera's namespace: it does
what a camera's export would (log in, make YYYY/MM/DD, upload in passive mode) and the things
a camera must not be able to do. Prints one JSON object: what worked and the server's replies.

    ftp_client.py HOST USER PASSWORD ACTION [ARG...]
      login                      log in only
      upload DIR NAME SIZE [N]   make DIR (a/b/c), upload N files NAME-0.. of SIZE bytes each
      download PATH              fetch PATH (must be refused)
      list PATH                  NLST PATH
      delete PATH                DELE PATH (must be refused)
      active DIR NAME            upload one file in active mode (PORT)
"""

from __future__ import annotations

import ftplib
import io
import json
import sys
from typing import Any

TIMEOUT = 5


def _reply(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _mkdirs(ftp: ftplib.FTP, path: str) -> None:
    for part in path.split("/"):
        try:
            ftp.cwd(part)
        except ftplib.error_perm:
            ftp.mkd(part)
            ftp.cwd(part)


def _store(ftp: ftplib.FTP, name: str, data: bytes) -> None:
    try:
        ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    except OSError as err:
        # The server cut the data connection mid-upload (a full disk): its reply says why.
        try:
            ftp.getresp()
        except ftplib.Error as reply:
            raise reply from err
        except OSError:
            pass
        raise


def run(host: str, user: str, password: str, action: str, args: list[str]) -> dict[str, Any]:
    ftp = ftplib.FTP(timeout=TIMEOUT)
    try:
        ftp.connect(host, 21)
    except OSError as err:
        return {"connected": False, "error": _reply(err)}
    result: dict[str, Any] = {"connected": True, "welcome": ftp.getwelcome()}
    try:
        ftp.login(user, password)
    except ftplib.Error as err:
        result.update(logged_in=False, error=_reply(err))
        ftp.close()
        return result
    result["logged_in"] = True
    ftp.set_pasv(action != "active")
    try:
        if action == "upload" or action == "active":
            folder, name = args[0], args[1]
            size = int(args[2]) if len(args) > 2 else 1000
            count = int(args[3]) if len(args) > 3 else 1
            _mkdirs(ftp, folder)
            if action == "upload":
                result["pasv_port"] = ftp.makepasv()[1]
            result["uploaded"] = 0  # counts up: a failed upload leaves how many went before
            for i in range(count):
                data = bytes([i % 251]) * size
                _store(ftp, f"{name}-{i}.mp4", data)
                result["uploaded"] = i + 1
            result["pwd"] = ftp.pwd()
        elif action == "download":
            sink = io.BytesIO()
            ftp.retrbinary(f"RETR {args[0]}", sink.write)
            result["downloaded"] = len(sink.getvalue())
        elif action == "list":
            result["listed"] = ftp.nlst(args[0])
        elif action == "delete":
            ftp.delete(args[0])
            result["deleted"] = True
        result["ok"] = True
    except (ftplib.Error, OSError) as err:
        result.update(ok=False, error=_reply(err))
    try:
        ftp.quit()
    except (ftplib.Error, OSError):
        ftp.close()
    return result


if __name__ == "__main__":
    host, user, password, action, *rest = sys.argv[1:]
    print(json.dumps(run(host, user, password, action, rest)))
