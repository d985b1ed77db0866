#!/usr/bin/env python3
"""moto's server, configured to behave like AWS IoT where moto can be told to.

Same arguments as ``moto_server`` (``-H HOST -p PORT``). Before serving it switches on moto's
``iot.use_valid_cert`` so certificate ids are the SHA-256 of the DER, as AWS computes them
(moto's default hashes the PEM text, which no client can predict). The setting is only read
in-process, hence this launcher. Used by the tests' harness, the lab and the benchmarks.
"""

import sys

from moto.core.config import default_user_config
from moto.server import main

if __name__ == "__main__":
    default_user_config.setdefault("iot", {})["use_valid_cert"] = True
    main(sys.argv[1:])
