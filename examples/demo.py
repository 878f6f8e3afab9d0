"""Run examples/publisher.py and examples/subscriber.py side by side for a few seconds."""

import signal
import subprocess
import sys
import time
from pathlib import Path

here = Path(__file__).parent
publisher = subprocess.Popen([sys.executable, here / "publisher.py"])
time.sleep(1.5)
subscriber = subprocess.Popen([sys.executable, here / "subscriber.py"])
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 4)
for proc in (subscriber, publisher):
    proc.send_signal(signal.SIGINT)  # both examples clean up on Ctrl-C
    proc.wait(5)
