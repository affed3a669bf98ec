"""This process's place in a cluster of machines (TF_CONFIG), read without TensorFlow: which task it is and whether
it writes the run's files."""
import json
import os


def cluster_task():
    """(task type, index) of this process in the TF_CONFIG cluster, or None when it trains alone."""
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task")
    return (task["type"], int(task["index"])) if task else None


def is_chief():
    """Whether this process writes the run's files: it trains alone, or it is the cluster's chief (the "chief"
    task, or worker 0 where the cluster names no chief). The other workers compute the same steps with it."""
    task = cluster_task()
    if task is None or task[0] == "chief":
        return True
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return task == ("worker", 0) and "chief" not in cluster
