"""The Helm chart deploy/helm/quilt-mcp, linted, rendered and validated offline.

    python ci_helm.py CHART OUTDIR CRATE_VERSION BINARY

Run by scripts/ci-helm inside a venv with helm-python-sdk (Helm's lint and template
engine, no helm binary, no cluster), kubernetes-validate and yamllint. For each values
set (the defaults with only a Secret named, and CHART/ci/*-values.yaml): `helm lint
--strict` for Kubernetes 1.32 without a finding, `helm template` into OUTDIR/SET/, yamllint
on every rendered file, kubernetes-validate --strict against the Kubernetes 1.32 schemas,
and the checks below on what was rendered; BINARY is then started with the rendered
Deployment's arguments and environment (everything on) and asked over HTTP what they
mean (serve_as_rendered). Also: the chart's version and appVersion are
the crate's, rendering without a Secret fails with a message naming auth.existingSecret,
and values of the wrong shape are refused naming the value. Exits non-zero when a check
failed, after printing every failure.
"""

import http.client
import json
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time

import helm_python as helm
import yaml

KUBE_VERSION = "1.32.0"
RELEASE, NAMESPACE = "quilt-mcp", "tools"
FAILURES = []
PASSED = [0]


def check(what, ok, detail=""):
    """Counts a passed check; prints a failed one with its detail."""
    if ok:
        PASSED[0] += 1
    else:
        print(f"ci-helm: FAILED: {what}" + (f": {detail}" if detail else ""), file=sys.stderr)
        FAILURES.append(what)


def container(objects):
    deployment = objects["Deployment"]
    return deployment, deployment["spec"]["template"]["spec"], deployment["spec"]["template"]["spec"]["containers"][0]


def args_after(args, flag):
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


def env_of(main):
    return {item["name"]: item for item in main.get("env", [])}


def check_common(name, objects):
    """What every values set must give: a non-root, read-only pod probed on its health paths."""
    for kind in ("Deployment", "Service", "ServiceAccount"):
        check(f"{name}: renders a {kind}", kind in objects)
    deployment, pod, main = container(objects)
    security = main["securityContext"]
    check(f"{name}: container read-only root, no privilege escalation, no capabilities",
          security.get("readOnlyRootFilesystem") is True and security.get("allowPrivilegeEscalation") is False
          and security.get("capabilities", {}).get("drop") == ["ALL"] and security.get("runAsNonRoot") is True,
          json.dumps(security))
    check(f"{name}: pod runs as 65532 (non-root), RuntimeDefault seccomp",
          pod["securityContext"].get("runAsUser") == 65532 and pod["securityContext"].get("runAsNonRoot") is True
          and pod["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault",
          json.dumps(pod["securityContext"]))
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    check(f"{name}: HOME and /tmp are emptyDir volumes",
          all(path in mounts and "emptyDir" in volumes[mounts[path]] for path in ("/home/quilt-mcp", "/tmp")),
          json.dumps(mounts))
    check(f"{name}: liveness probe GET /healthz, readiness probe GET /readyz, on the http port",
          main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
          and main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"})
    check(f"{name}: serves HTTP on all interfaces at the container port",
          main["args"][:3] == ["serve", "--http", f"0.0.0.0:{main['ports'][0]['containerPort']}"], json.dumps(main["args"]))
    check(f"{name}: resources requested and memory limited",
          "requests" in main["resources"] and "memory" in main["resources"].get("limits", {}))
    check(f"{name}: no service account token mounted", pod.get("automountServiceAccountToken") is False)
    check(f"{name}: JSON logs to stderr", env_of(main).get("QUILT_MCP_LOG_TARGET", {}).get("value") == "stderr")
    service = objects["Service"]
    check(f"{name}: the Service selects the Deployment's pods",
          service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items())


def check_default(objects):
    deployment, pod, main = container(objects)
    env = env_of(main)
    check("default: the shared secret comes from the named Secret",
          env["QUILT_MCP_JWT_SECRET"].get("valueFrom") == {"secretKeyRef": {"name": "quilt-mcp-jwt", "key": "jwt-secret"}},
          json.dumps(env.get("QUILT_MCP_JWT_SECRET")))
    check("default: 2 replicas, a PodDisruptionBudget, no HPA, no Ingress",
          deployment["spec"].get("replicas") == 2 and "PodDisruptionBudget" in objects
          and "HorizontalPodAutoscaler" not in objects and "Ingress" not in objects)
    check("default: no --public-url, no --allowed-host",
          "--public-url" not in main["args"] and "--allowed-host" not in main["args"], json.dumps(main["args"]))


def check_full(objects):
    deployment, pod, main = container(objects)
    args = main["args"]
    check("full: --public-url from values", args_after(args, "--public-url") == ["https://mcp.example.com"], json.dumps(args))
    check("full: --allowed-host from allowedHosts, then each Ingress host",
          args_after(args, "--allowed-host") == ["quilt-mcp.tools.svc.cluster.local", "mcp.example.com", "mcp.internal.example.com"],
          json.dumps(args))
    check("full: an HPA on the Deployment, which then sets no replicas",
          objects.get("HorizontalPodAutoscaler", {}).get("spec", {}).get("scaleTargetRef", {}).get("name") == deployment["metadata"]["name"]
          and "replicas" not in deployment["spec"])
    check("full: a PodDisruptionBudget (3 replicas at least)", "PodDisruptionBudget" in objects)
    ingress = objects.get("Ingress", {})
    rules = {rule["host"]: rule for rule in ingress.get("spec", {}).get("rules", [])}
    check("full: an Ingress for both hosts, to the Service",
          sorted(rules) == ["mcp.example.com", "mcp.internal.example.com"]
          and all(p["backend"]["service"]["name"] == objects["Service"]["metadata"]["name"]
                  for rule in rules.values() for p in rule["http"]["paths"]))
    env = env_of(main)
    check("full: catalog, registry, region, read-only, issuer and extra variables",
          env["QUILT_CATALOG_URL"]["value"] == "https://quilt.example.com"
          and env["QUILT_REGISTRY_URL"]["value"] == "https://registry.quilt.example.com"
          and env["QUILT_MCP_AWS_REGION"]["value"] == "us-east-2" and env["QUILT_MCP_READ_ONLY"]["value"] == "true"
          and env["QUILT_MCP_JWT_ISSUER"]["value"] == "https://quilt.example.com"
          and env["QUILT_MCP_JWT_LEEWAY_SECS"]["value"] == "10", json.dumps(env))


def check_jwks(objects):
    deployment, pod, main = container(objects)
    env = env_of(main)
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    check("jwks: QUILT_MCP_JWKS names the file mounted from the Secret, no shared secret",
          env.get("QUILT_MCP_JWKS", {}).get("value") == "/etc/quilt-mcp/keys/jwks.json"
          and "QUILT_MCP_JWT_SECRET" not in env
          and mounts.get("keys", {}).get("mountPath") == "/etc/quilt-mcp/keys" and mounts["keys"].get("readOnly") is True
          and volumes.get("keys", {}).get("secret", {}).get("secretName") == "quilt-mcp-jwks",
          json.dumps([env, mounts]))
    check("jwks: one replica, so no PodDisruptionBudget",
          deployment["spec"].get("replicas") == 1 and "PodDisruptionBudget" not in objects)


def serve_as_rendered(binary, objects):
    """Runs BINARY with the rendered container's arguments and environment (the Secret's
    value made up, the listener moved to 127.0.0.1:0) and checks what those settings
    mean over HTTP: the public URL and every allowed host pass the Host check (401 for
    no token, not 403), another host is refused, the metadata names the public URL."""
    _, _, main = container(objects)
    args = list(main["args"])
    args[args.index("--http") + 1] = "127.0.0.1:0"
    with tempfile.TemporaryDirectory(prefix="ci-helm-") as home:
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "QUILT_MCP_LOG_DIR": home}
        for item in main["env"]:
            env[item["name"]] = item.get("value", "ci-helm-secret-ci-helm-secret-ci-helm-secret")
        server = subprocess.Popen([binary, *args], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            address = None
            deadline = time.monotonic() + 60
            while address is None and time.monotonic() < deadline:
                line = server.stderr.readline()
                if not line:
                    break
                match = re.search(r"serving MCP at http://(127\.0\.0\.1:\d+)/mcp", line)
                address = match and match.group(1)
            check("full: the binary starts with the rendered arguments and environment", address is not None,
                  f"{binary} {' '.join(args)}")
            if address is None:
                return

            def status(method, path, host):
                connection = http.client.HTTPConnection(address, timeout=30)
                connection.request(method, path, body=b"{}" if method == "POST" else None,
                                   headers={"Host": host, "Content-Type": "application/json",
                                            "Accept": "application/json, text/event-stream"})
                response = connection.getresponse()
                body = response.read().decode()
                connection.close()
                return response.status, body

            for host in ("mcp.example.com", "mcp.internal.example.com", "quilt-mcp.tools.svc.cluster.local"):
                got, body = status("POST", "/mcp", host)
                check(f"full: Host {host} is accepted (401 without a token)", got == 401, f"{got} {body}")
            got, body = status("POST", "/mcp", "elsewhere.example.com")
            check("full: another Host is refused (403)", got == 403, f"{got} {body}")
            got, body = status("GET", "/healthz", "10.0.0.7:8080")
            check("full: the liveness probe's path answers 200 whatever the Host", got == 200, f"{got} {body}")
            got, body = status("GET", "/.well-known/oauth-protected-resource", "mcp.example.com")
            check("full: the metadata names the public URL and the catalog",
                  got == 200 and json.loads(body).get("resource") == "https://mcp.example.com/mcp"
                  and json.loads(body).get("authorization_servers") == ["https://quilt.example.com"], f"{got} {body}")
        finally:
            server.terminate()
            server.wait(timeout=30)


def main():
    chart_dir, out_dir, crate_version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    binary = sys.argv[4]
    venv_bin = pathlib.Path(sys.executable).parent
    chart = helm.Chart.load(str(chart_dir))
    check(f"Chart.yaml version and appVersion are the crate's ({crate_version})",
          chart.version == crate_version and chart.metadata.get("appVersion") == crate_version,
          f"version {chart.version}, appVersion {chart.metadata.get('appVersion')}")
    try:
        chart.render(None, name=RELEASE, namespace=NAMESPACE)
        check("without auth.existingSecret, rendering fails", False, "it rendered")
    except helm.HelmError as err:
        check("without auth.existingSecret, rendering fails naming it", "auth.existingSecret" in str(err), str(err))

    # Values the chart refuses (values.schema.json, or a template's check), and why.
    refused = [
        ({"auth": {"existingSecret": "s", "type": "hmac"}}, "/auth/type"),
        ({"auth": {"existingSecret": "s"}, "publicUrl": "mcp.example.com"}, "/publicUrl"),
        ({"auth": {"existingSecret": "s"}, "publicUrl": "https://mcp.example.com/?tenant=a"}, "/publicUrl"),
        ({"auth": {"existingSecret": "s"}, "publicUrl": "https://user@mcp.example.com"}, "/publicUrl"),
        ({"auth": {"existingSecret": "s"}, "replicaCount": "two"}, "/replicaCount"),
        ({"auth": {"existingSecret": "s"}, "image": {"digest": "sha256:1234"}}, "/image/digest"),
        ({"auth": {"existingSecret": "s"}, "ingress": {"enabled": True, "hosts": [{"paths": []}]}}, "host"),
        ({"auth": {"existingSecret": "s"}, "server": {"port": 0}}, "/server/port"),
    ]
    for values, reason in refused:
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
            check(f"refuses {json.dumps(values)}", False, "it rendered")
        except helm.HelmError as err:
            check(f"refuses {json.dumps(values)} naming {reason}", reason in str(err), str(err))

    sets = {"default": {"auth": {"existingSecret": "quilt-mcp-jwt"}}}
    for path in sorted((chart_dir / "ci").glob("*-values.yaml")):
        sets[path.name.removesuffix("-values.yaml")] = yaml.safe_load(path.read_text())
    checks = {"default": check_default, "full": check_full, "jwks": check_jwks}
    check("every values set in ci/ has its checks", sorted(sets) == sorted(checks), f"{sorted(sets)}")
    for name, values in sets.items():
        report = helm.lint(str(chart_dir), values, strict=True, kube_version=f"v{KUBE_VERSION}", namespace=NAMESPACE)
        findings = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
        check(f"{name}: helm lint --strict (Kubernetes {KUBE_VERSION})", not findings, json.dumps(findings))
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        target = out_dir / name
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*.yaml"):
            old.unlink()
        objects, files = {}, []
        for template, text in sorted(rendered.items()):
            if not template.endswith(".yaml") or not text.strip():
                continue
            file = target / pathlib.Path(template).name
            file.write_text(text.lstrip("\n"))
            files.append(str(file))
            for doc in yaml.safe_load_all(text):
                if doc:
                    check(f"{name}: {template} holds one object of each kind", doc["kind"] not in objects)
                    objects[doc["kind"]] = doc
        lint = subprocess.run([str(venv_bin / "yamllint"), "--strict", "-d",
                               "{extends: default, rules: {line-length: {max: 160}, document-start: disable}}", *files],
                              capture_output=True, text=True)
        check(f"{name}: yamllint of {len(files)} rendered files", lint.returncode == 0, lint.stdout + lint.stderr)
        validate = subprocess.run([str(venv_bin / "kubernetes-validate"), "--strict", "--quiet",
                                   "-k", KUBE_VERSION, *files], capture_output=True, text=True)
        check(f"{name}: kubernetes-validate --strict (Kubernetes {KUBE_VERSION}): {', '.join(sorted(objects))}",
              validate.returncode == 0, validate.stdout + validate.stderr)
        check_common(name, objects)
        checks[name](objects)
        if name == "full":
            serve_as_rendered(binary, objects)
        print(f"ci-helm: {name}: linted, rendered and validated: {', '.join(sorted(objects))}", file=sys.stderr)
    # The chart as the release packages and pushes it: no CI values inside, renders alone.
    archive = pathlib.Path(helm.package(str(chart_dir), destination=str(out_dir)))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    check(f"{archive.name}: holds the templates and schema, not ci/",
          "quilt-mcp/values.schema.json" in names and "quilt-mcp/templates/deployment.yaml" in names
          and not any("/ci/" in n for n in names), json.dumps(names))
    packaged = helm.Chart.load_archive(archive.read_bytes())
    check(f"{archive.name}: renders as the directory does",
          packaged.render(sets["full"], name=RELEASE, namespace=NAMESPACE)
          == chart.render(sets["full"], name=RELEASE, namespace=NAMESPACE))
    print(f"ci-helm: packaged {archive.name} ({archive.stat().st_size} bytes)", file=sys.stderr)
    print(f"ci-helm: {PASSED[0]} checks passed, {len(FAILURES)} failed", file=sys.stderr)
    if FAILURES:
        sys.exit(1)


if __name__ == "__main__":
    main()
