#!/usr/bin/env python3
"""Renders the incasso Helm chart with real Helm and validates what comes out.

Helm itself renders the chart: the PyPI package helm-python-sdk binds Helm's Go SDK (no helm
binary, no cluster). Every manifest is then validated against the Kubernetes OpenAPI schemas
of KUBE_VERSIONS with kubernetes-validate (strict: an unknown field is an error), and the
chart's promises are checked by name: probes on /livez and /readyz of the admin port, the
HPA, PDB, NetworkPolicy and migration Job present by default, non-root containers with a
read-only root filesystem and no privilege escalation, a configuration that is valid TOML.

Renders: the default values, helm/ci/values-production.yaml, and the default values with the
secrets given inline (so the chart's own Secret is rendered too). values.schema.json must
accept all three and refuse known-bad values.

Both packages are installed into a virtualenv under target/ when missing. Exits non-zero
on any error. Usage: python3 helm/ci/check.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "incasso"
PRODUCTION_VALUES = ROOT / "helm" / "ci" / "values-production.yaml"
VENV = ROOT / "target" / "helm-ci-venv"
PACKAGES = ["helm-python-sdk==0.2.2", "kubernetes-validate==1.37.0"]
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion; the preStop sleep action
# is on by default from 1.30) and a recent one.
KUBE_VERSIONS = ["1.31.0", "1.35.0"]
RELEASE = "incasso"
NAMESPACE = "pagamenti"


def ensure_packages() -> None:
    """Re-runs this script in a virtualenv holding the packages, creating it if needed."""
    try:
        import helm_python  # noqa: F401
        import kubernetes_validate  # noqa: F401
        import yaml  # noqa: F401

        return
    except ImportError:
        pass
    python = VENV / "bin" / "python"
    # sys.prefix, not the executable: a virtualenv's python is a symlink to the interpreter
    # that made it, so both resolve to the same file.
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("helm/ci/check.py: the packages are missing from " + str(VENV))
    if not python.exists():
        print(f"creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import helm_python, kubernetes_validate, yaml"],
        capture_output=True,
    )
    if probe.returncode != 0:
        print("installing " + " ".join(PACKAGES), flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
            check=True,
        )
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


class Report:
    """Collects failures; the script exits 1 if there is any."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checks = 0

    def check(self, ok: bool, what: str) -> bool:
        self.checks += 1
        if not ok:
            self.failures.append(what)
            print(f"  FAIL {what}")
        return ok


def documents(report: Report, case: str, rendered: dict[str, str]) -> list[tuple[str, dict]]:
    import yaml

    docs = []
    for template, text in sorted(rendered.items()):
        try:
            loaded = list(yaml.safe_load_all(text))
        except yaml.YAMLError as error:
            report.check(False, f"{case}: {template} is not YAML: {error}")
            continue
        docs.extend((template, doc) for doc in loaded if doc)
    return docs


def find(docs: list[tuple[str, dict]], kind: str) -> list[dict]:
    return [d for _, d in docs if d.get("kind") == kind]


def check_pod(report: Report, label: str, pod_spec: dict) -> None:
    """Non-root, read-only root filesystem, no privilege escalation, for every container."""
    pod_security = pod_spec.get("securityContext", {})
    report.check(pod_security.get("runAsNonRoot") is True, f"{label}: pod runAsNonRoot")
    for container in pod_spec.get("containers", []):
        name = f"{label}/{container.get('name')}"
        security = container.get("securityContext", {})
        report.check(security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
        report.check(
            isinstance(security.get("runAsUser"), int) and security["runAsUser"] > 0,
            f"{name}: runs as a non-zero uid",
        )
        report.check(security.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
        report.check(security.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
        report.check(
            "ALL" in security.get("capabilities", {}).get("drop", []), f"{name}: drops every capability"
        )


def check_chart_promises(report: Report, case: str, docs: list[tuple[str, dict]], values: dict) -> None:
    deployments = find(docs, "Deployment")
    if not report.check(len(deployments) == 1, f"{case}: exactly one Deployment"):
        return
    deployment = deployments[0]
    pod = deployment["spec"]["template"]["spec"]
    check_pod(report, f"{case}: Deployment", pod)
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    report.check(
        set(ports) == {"grpc", "soap", "admin"}, f"{case}: container ports grpc, soap, admin ({ports})"
    )
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        report.check(get.get("path") == path, f"{case}: {probe} is httpGet {path} (got {get})")
        report.check(
            get.get("port") in ("admin", ports.get("admin")), f"{case}: {probe} on the admin port (got {get})"
        )

    # The configuration is TOML incasso reads, listening where the probes and Services look.
    configmaps = find(docs, "ConfigMap")
    if report.check(len(configmaps) == 1, f"{case}: one ConfigMap"):
        try:
            config = tomllib.loads(configmaps[0]["data"]["incasso.toml"])
        except (tomllib.TOMLDecodeError, KeyError) as error:
            report.check(False, f"{case}: incasso.toml is not valid TOML: {error}")
        else:
            for key, port in (("grpc_listen", "grpc"), ("soap_listen", "soap"), ("admin_listen", "admin")):
                report.check(
                    config.get(key) == f"0.0.0.0:{ports.get(port)}",
                    f"{case}: {key} = 0.0.0.0:{ports.get(port)} (got {config.get(key)})",
                )
            report.check(
                config.get("shutdown_grace_seconds") == values["shutdownGraceSeconds"],
                f"{case}: shutdown_grace_seconds from the values",
            )
            report.check(
                config.get("ready_on_newer_schema") is values["readyOnNewerSchema"],
                f"{case}: ready_on_newer_schema from the values",
            )
            grace = pod.get("terminationGracePeriodSeconds", 30)
            report.check(
                grace > config.get("shutdown_grace_seconds", 0) + values["preStopSleepSeconds"],
                f"{case}: the pod's grace period ({grace}s) outlasts preStop and the drain",
            )

    services = {s["spec"]["ports"][0]["name"] for s in find(docs, "Service")}
    report.check(services == {"grpc", "soap", "admin"}, f"{case}: Services for grpc, soap, admin ({services})")

    hpas = find(docs, "HorizontalPodAutoscaler")
    if report.check(len(hpas) == 1, f"{case}: an HPA"):
        spec = hpas[0]["spec"]
        report.check(spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"], f"{case}: HPA targets the Deployment")
        report.check(
            any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", [])), f"{case}: HPA on CPU"
        )
    pdbs = find(docs, "PodDisruptionBudget")
    if report.check(len(pdbs) == 1, f"{case}: a PodDisruptionBudget"):
        report.check(
            pdbs[0]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"],
            f"{case}: the PDB selects the Deployment's pods",
        )

    policies = {p["metadata"]["name"]: p for p in find(docs, "NetworkPolicy")}
    server_policy = policies.get(deployment["metadata"]["name"])
    if report.check(server_policy is not None, f"{case}: a NetworkPolicy for the replicas"):
        spec = server_policy["spec"]
        report.check(set(spec["policyTypes"]) == {"Ingress", "Egress"}, f"{case}: it polices ingress and egress")
        by_port = {rule["ports"][0]["port"]: rule for rule in spec["ingress"]}
        report.check(set(by_port) == {"grpc", "soap", "admin"}, f"{case}: ingress rules per port ({set(by_port)})")
        grpc_from = by_port.get("grpc", {}).get("from", [])
        report.check(
            len(grpc_from) > 0 and all(f.get("namespaceSelector", {}).get("matchLabels") for f in grpc_from),
            f"{case}: gRPC only from labelled namespaces",
        )
        soap_from = by_port.get("soap", {}).get("from", [])
        report.check(
            len(soap_from) > 0
            and all(f.get("namespaceSelector", {}).get("matchLabels") and f.get("podSelector", {}).get("matchLabels") for f in soap_from),
            f"{case}: SOAP only from the ingress pods",
        )
        egress_ports = {p["port"] for rule in spec["egress"] for p in rule.get("ports", [])}
        for port in (53, values["networkPolicy"]["egress"]["postgres"]["port"], 443):
            report.check(port in egress_ports, f"{case}: egress to port {port}")

    jobs = find(docs, "Job")
    if report.check(len(jobs) == 1, f"{case}: a migration Job"):
        job = jobs[0]
        hooks = set(job["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(","))
        report.check({"pre-install", "pre-upgrade"} <= hooks, f"{case}: the Job is a pre-install/pre-upgrade hook")
        job_pod = job["spec"]["template"]["spec"]
        report.check(job_pod["containers"][0].get("args") == ["migrate"], f"{case}: the Job runs incasso migrate")
        check_pod(report, f"{case}: Job", job_pod)

    for template, doc in docs:
        if doc.get("kind") == "Secret":
            continue
        # No secret value ever lands outside a Secret.
        text = str(doc)
        for secret in SECRET_VALUES:
            report.check(secret not in text, f"{case}: a secret value in {template}")


def check_plain_keys_write_back(report: Report, case: str, docs: list[tuple[str, dict]], values: dict) -> None:
    """One nightly CronJob per listed creditor running `incasso recon write-plain-keys`, when enabled."""
    cronjobs = find(docs, "CronJob")
    settings = values["plainKeysWriteBack"]
    expected = settings["creditors"] if settings["enabled"] else []
    if not report.check(len(cronjobs) == len(expected), f"{case}: {len(expected)} write-plain-keys CronJobs"):
        return
    for creditor, cronjob in zip(expected, cronjobs):
        spec = cronjob["spec"]
        report.check(spec.get("concurrencyPolicy") == "Forbid", f"{case}: {creditor}: one pass at a time")
        report.check(spec.get("timeZone") == "Europe/Rome", f"{case}: {creditor}: scheduled in Rome's time")
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        args = pod["containers"][0].get("args", [])
        report.check(
            args
            == [
                "--config",
                "/etc/incasso/incasso.toml",
                "recon",
                "write-plain-keys",
                "--creditor",
                creditor,
                "--older-than-days",
                str(settings["olderThanDays"]),
            ],
            f"{case}: {creditor}: runs incasso recon write-plain-keys ({args})",
        )
        check_pod(report, f"{case}: CronJob {creditor}", pod)
    if expected and values["networkPolicy"]["enabled"]:
        labels = cronjobs[0]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        selected = [
            p
            for p in find(docs, "NetworkPolicy")
            if all(labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())
        ]
        report.check(
            len(selected) == 1 and selected[0]["spec"].get("ingress") == [],
            f"{case}: the CronJobs' pods take nothing in ({[p['metadata']['name'] for p in selected]})",
        )


# The inline secrets of the third render; none may appear outside the chart's Secret.
SECRET_VALUES = [
    "postgres://incasso:s3cret@db.example:5432/incasso",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "ffeeddccbbaa99887766554433221100",
]


def validate_against_kubernetes(report: Report, case: str, docs: list[tuple[str, dict]]) -> None:
    from kubernetes_validate import utils as kv

    for template, doc in docs:
        for version in KUBE_VERSIONS:
            label = f"{case}: {doc.get('kind')} {doc.get('metadata', {}).get('name')} ({template}) on Kubernetes {version}"
            try:
                kv.validate(doc, version, strict=True)
                report.check(True, label)
            except kv.SchemaNotFoundError:
                # The Prometheus Operator's CRDs are not Kubernetes' own schemas.
                if doc.get("apiVersion") == "monitoring.coreos.com/v1" and doc.get("kind") == "ServiceMonitor":
                    endpoints = doc.get("spec", {}).get("endpoints", [])
                    report.check(
                        any(e.get("port") == "admin" and e.get("path") == "/metrics" for e in endpoints),
                        f"{label}: scrapes /metrics on the admin port",
                    )
                else:
                    report.check(False, f"{label}: no schema for this kind")
            except kv.ValidationError as error:
                report.check(False, f"{label}: {error.message} at {'.'.join(str(p) for p in error.path)}")
            except Exception as error:  # noqa: BLE001 - any other failure is a failure too
                report.check(False, f"{label}: {error}")


def main() -> int:
    ensure_packages()
    import helm_python as helm
    import yaml

    report = Report()
    print(f"Helm SDK {helm.helm_sdk_version()}, Kubernetes schemas {', '.join(KUBE_VERSIONS)}")

    lint = helm.lint(str(CHART), strict=True, kube_version="v" + KUBE_VERSIONS[0])
    for message in lint.get("messages", []):
        report.check(message.get("severity", 0) < 2, f"helm lint: {message.get('path')}: {message.get('error')}")
    for error in lint.get("errors", []):
        report.check(False, f"helm lint: {error}")

    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    inline_secrets = {
        "database": {"existingSecret": "", "url": SECRET_VALUES[0]},
        "privacy": {"encryptionKeyHex": SECRET_VALUES[1], "fiscalCodePepperHex": SECRET_VALUES[2]},
        "aca": {"url": "https://api.uat.platform.pagopa.it/aca/v1", "subscriptionKey": "subscription-key-value"},
    }
    cases = {"default": {}, "production": production, "inline-secrets": inline_secrets}
    with helm.Chart.load(str(CHART)) as chart:
        # The schema refuses what would make a broken deployment.
        for bad_name, bad in {
            "replicas as text": {"replicaCount": "two"},
            "no database at all": {"database": {"existingSecret": "", "url": ""}},
            "a short encryption key": {"privacy": {"encryptionKeyHex": "abcd"}},
            "an unknown key": {"replicas": 3},
        }.items():
            try:
                chart.validate_schema(bad)
                report.check(False, f"values.schema.json accepts {bad_name}")
            except helm.HelmError:
                report.check(True, f"values.schema.json refuses {bad_name}")

        for case, values in cases.items():
            print(f"== {case}")
            try:
                chart.validate_schema(values)
            except helm.HelmError as error:
                report.check(False, f"{case}: values.schema.json refuses the values: {error}")
                continue
            try:
                rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
            except helm.HelmError as error:
                report.check(False, f"{case}: helm render: {error}")
                continue
            merged = chart.merge_values(values)
            docs = documents(report, case, rendered)
            kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for _, d in docs)
            print("   " + ", ".join(kinds))
            check_chart_promises(report, case, docs, merged)
            validate_against_kubernetes(report, case, docs)
            if case == "inline-secrets":
                secrets = find(docs, "Secret")
                report.check(len(secrets) == 1, f"{case}: the chart creates one Secret")
            if case == "default":
                report.check(not find(docs, "ServiceMonitor"), f"{case}: no ServiceMonitor by default")
            if case == "production":
                report.check(len(find(docs, "ServiceMonitor")) == 1, f"{case}: a ServiceMonitor")
            check_plain_keys_write_back(report, case, docs, merged)

    passed = report.checks - len(report.failures)
    print(f"helm: {passed} passed, {len(report.failures)} failed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
