"""Run examples/publisher.py and examples/subscriber.py side by side for a few seconds.

python examples/demo.py [SECONDS] [NAME]   # default 4 s, stream demo
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import framebus

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4
name = sys.argv[2] if len(sys.argv) > 2 else "demo"
here = Path(__file__).parent
publisher = subprocess.Popen([sys.executable, here / "publisher.py", name])
framebus.Subscriber(name, copy=True, wait=10).close()  # until the publisher has made the stream
subscriber = subprocess.Popen([sys.executable, here / "subscriber.py", name])
time.sleep(seconds)
for proc in (subscriber, publisher):
    proc.send_signal(signal.SIGINT)  # both examples clean up on Ctrl-C
    proc.wait(10)
