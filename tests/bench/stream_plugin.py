"""A benchmark executor: writes `mib` MiB of live output in `write_kib` KiB writes."""

from horae_sdk import Executor, OutputStream, serve


class StreamExecutor(Executor):
    name = "stream"

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> bytes:
        chunk = b"x" * (int(config.get("write_kib", "1024")) * 1024)
        total = int(config.get("mib", "256")) * 1024 * 1024
        for _ in range(total // len(chunk)):
            stream.write(chunk)
        return b"done"


if __name__ == "__main__":
    serve(executor=StreamExecutor())
