"""Small helpers the unit tests share (one place, not one per test module)."""

import threading

# the device policy the fleet_account fixture (tests/unit/plugins/module_utils/conftest.py) makes
POLICY = "fleet-device"


def four_runs(func, *args, **kwargs):
    """check mode, real, real again, check mode again: the outcomes of ``func(*args, check_mode=…, **kwargs)``."""
    return [func(*args, check_mode=check_mode, **kwargs) for check_mode in (True, False, False, True)]


def run_in_threads(work, count):
    """``work(index)`` in ``count`` threads at once; returns, when all have ended, the exceptions they raised."""
    errors = []
    lock = threading.Lock()

    def guarded(index):
        try:
            work(index)
        except Exception as e:  # noqa: BLE001 - returned to the test, which asserts on it
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def principals(boto3_iot, thing):
    """The certificates attached to ``thing``: {certificate id: status}."""
    return {arn.rsplit("/", 1)[-1]: boto3_iot.describe_certificate(certificateId=arn.rsplit("/", 1)[-1])
            ["certificateDescription"]["status"]
            for arn in boto3_iot.list_thing_principals(thingName=thing)["principals"]}
