"""Build the Grafana dashboards into this folder: ``python dashboards/build.py [OUTPUT_DIR]``.

The same as ``caretaker dashboards build``; the dashboards themselves are defined in agent/dashboards.py.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing the package

from agent.dashboards import write_dashboards  # noqa: E402

if __name__ == "__main__":
    for path in write_dashboards(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
