"""Download a file once, verify its checksum, and never leave a half-written file behind.

Works with any URL urllib understands (https://, http://, file://), so a mirror, a
local server or a folder of files can stand in for the original site; the tests use
local files only. A checksum is "md5:<hex>" or "sha256:<hex>" (a bare hex string is
read as MD5 if 32 characters long, SHA-256 if 64).
"""

import hashlib
import os
import tempfile


class DownloadError(OSError):
    """The file could not be fetched, or its checksum did not match."""


def parse_checksum(checksum):
    """'md5:abc...' / 'sha256:abc...' / bare hex -> (algorithm, hex digest)."""
    if ":" in checksum:
        algorithm, digest = checksum.split(":", 1)
    elif len(checksum) == 32:
        algorithm, digest = "md5", checksum
    elif len(checksum) == 64:
        algorithm, digest = "sha256", checksum
    else:
        raise ValueError(f"checksum {checksum!r}: expected 'md5:<hex>', 'sha256:<hex>' or a 32/64-digit hex digest")
    algorithm = algorithm.lower()
    if algorithm not in ("md5", "sha256"):
        raise ValueError(f"checksum {checksum!r}: unsupported algorithm {algorithm!r} (use md5 or sha256)")
    return algorithm, digest.lower()


def file_digest(path, algorithm="sha256"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_url(url, destination, checksum=None, timeout=60):
    """Fetch `url` into the file `destination`, verifying `checksum` if given; returns the path.

    The data goes to a temporary file in the destination's directory first and is moved into
    place (os.replace, atomic) only after the checksum matched. A response cut short (fewer
    bytes than its Content-Length, or a broken chunked stream) is an error even without a
    checksum: http.client stops reading quietly in the first case.
    """
    import http.client  # imported here: urllib.request costs ~20 ms at `import minidl` time
    import urllib.error
    import urllib.request

    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, exist_ok=True)
    algorithm, expected = parse_checksum(checksum) if checksum else ("sha256", None)
    digest = hashlib.new(algorithm)
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(destination) + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    received = 0
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                        received += len(block)
                    _check_complete(response, received)  # an OSError: reported with the URL just below
            except urllib.error.HTTPError as e:
                raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise DownloadError(f"could not download {url}: {getattr(e, 'reason', e)}") from None
            except http.client.HTTPException as e:  # IncompleteRead, a malformed response...
                raise DownloadError(f"could not download {url}: {type(e).__name__}: {e}") from None
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and digest.hexdigest() != expected:
            raise DownloadError(
                f"checksum mismatch for {url}: expected {algorithm} {expected}, got {digest.hexdigest()}; "
                "the file was not saved (a corrupted download or a wrong mirror)"
            )
        os.replace(temp_path, destination)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
    return destination


def _check_complete(response, received):
    """Raise if the response announced more bytes (Content-Length) than arrived."""
    announced = response.headers.get("Content-Length")
    if announced is not None and announced.isdigit() and int(announced) != received:
        raise DownloadError(f"the connection closed after {received} of {announced} bytes")
