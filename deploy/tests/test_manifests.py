#!/usr/bin/env python3
"""Checks of deploy/: the Kubernetes manifests and the compose files.

- Both kustomizations (deploy/kubernetes/ with SQLite, deploy/kubernetes/postgres/) render with
  `kubectl kustomize` and pass `kubernetes-validate` (strict) against Kubernetes 1.32.
- Every pod template meets the "restricted" Pod Security Standard (the checks of
  https://kubernetes.io/docs/concepts/security/pod-security-standards/, written out below) and
  has a read-only root file system; the namespace enforces "restricted".
- The Role grants pods get/list/watch and pods/exec create, nothing else, to the daemon's
  service account only; no cluster-wide RBAC.
- The ConfigMap's podwranglerd.toml uses the in-cluster cluster source and holds no secrets.
- The Deployment, Service, volumes and image agree with deploy/image/Containerfile and the
  workspace version; the compose files run the same image the same way (and pass
  `docker-compose config` when it is installed).

Run: python3 deploy/tests/test_manifests.py  (or scripts/check-image.sh --manifests).
Needs kubectl (for kustomize), PyYAML and kubernetes-validate (pip install kubernetes-validate).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
COMPOSE = os.path.join(ROOT, "deploy", "compose")
CONTAINERFILE = os.path.join(ROOT, "deploy", "image", "Containerfile")
KUBERNETES_VERSION = "1.32.0"
VARIANTS = {"sqlite": K8S, "postgres": os.path.join(K8S, "postgres")}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
# Pod Security Standards, "restricted": the volume types it allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}


def workspace_version():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def render(path):
    out = subprocess.run(
        ["kubectl", "kustomize", path], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


RENDERED = {}


def rendered(variant):
    if variant not in RENDERED:
        RENDERED[variant] = render(VARIANTS[variant])
    return RENDERED[variant]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind):
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(doc):
    kind = doc["kind"]
    if kind == "Pod":
        return doc["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def restricted_violations(spec):
    """What keeps a pod spec from the "restricted" profile (Kubernetes 1.32), as messages."""
    bad = []
    psc = spec.get("securityContext") or {}
    containers = (
        [("container", c) for c in spec.get("containers", [])]
        + [("initContainer", c) for c in spec.get("initContainers", [])]
        + [("ephemeralContainer", c) for c in spec.get("ephemeralContainers", [])]
    )
    # Baseline: host namespaces, privileged, capabilities, host paths and ports, AppArmor,
    # SELinux, /proc mount, seccomp, sysctls.
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            bad.append(f"{key} is set")
    for sysctl in psc.get("sysctls") or []:
        bad.append(f"sysctl {sysctl['name']} (none is needed)")
    if (psc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        bad.append("pod appArmorProfile")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        bad.append("hostProcess")
    sel = psc.get("seLinuxOptions") or {}
    if sel.get("user") or sel.get("role") or sel.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"):
        bad.append("pod seLinuxOptions")
    for v in spec.get("volumes", []):
        types = set(v) - {"name"}
        if not types <= RESTRICTED_VOLUMES:
            bad.append(f"volume {v['name']} has type {sorted(types - RESTRICTED_VOLUMES)}")
    pod_non_root = psc.get("runAsNonRoot") is True
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if psc.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        bad.append(f"pod seccompProfile {pod_seccomp}")
    for what, c in containers:
        name = f"{what} {c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: adds capabilities {caps['add']}")
        if sc.get("procMount") not in (None, "Default"):
            bad.append(f"{name}: procMount {sc['procMount']}")
        if sc.get("runAsUser") == 0:
            bad.append(f"{name}: runAsUser 0")
        if not (sc.get("runAsNonRoot") is True or (pod_non_root and sc.get("runAsNonRoot") is not False)):
            bad.append(f"{name}: runAsNonRoot is not true")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp not in (None, "RuntimeDefault", "Localhost") or (seccomp is None and pod_seccomp is None):
            bad.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
        if (sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            bad.append(f"{name}: appArmorProfile")
        csel = sc.get("seLinuxOptions") or {}
        if csel.get("user") or csel.get("role"):
            bad.append(f"{name}: seLinuxOptions user/role")
        for p in c.get("ports", []):
            if p.get("hostPort"):
                bad.append(f"{name}: hostPort {p['hostPort']}")
    return bad


class RestrictedCheckItself(unittest.TestCase):
    """The checker finds what it should, so a pass below means something."""

    def test_flags_the_usual_mistakes(self):
        spec = {
            "hostNetwork": True,
            "securityContext": {},
            "containers": [{"name": "c", "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
                            "ports": [{"containerPort": 80, "hostPort": 80}]}],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        }
        text = "\n".join(restricted_violations(spec))
        for needle in ("hostNetwork", "privileged", "allowPrivilegeEscalation", "drop ALL", "adds capabilities",
                       "runAsNonRoot", "seccompProfile", "hostPort", "hostPath"):
            self.assertIn(needle, text)

    def test_accepts_a_restricted_pod(self):
        spec = {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                             "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "d", "emptyDir": {}}],
        }
        self.assertEqual(restricted_violations(spec), [])


class Manifests(unittest.TestCase):
    def test_kubernetes_validate_1_32(self):
        import kubernetes_validate
        for variant in VARIANTS:
            for doc in rendered(variant):
                with self.subTest(variant=variant, kind=doc["kind"], name=doc["metadata"]["name"]):
                    try:
                        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        self.fail(f"{e.path}: {e.message}")

    def test_kubernetes_validate_cli(self):
        """The same through the command line, as a person would run it."""
        exe = shutil.which("kubernetes-validate")
        if not exe:
            self.skipTest("kubernetes-validate is not on PATH")
        for variant, path in VARIANTS.items():
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                f.write(yaml.safe_dump_all(rendered(variant)))
                f.flush()
                r = subprocess.run([exe, "-k", KUBERNETES_VERSION, "--strict", "--quiet", f.name],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, f"{variant}: {r.stdout}{r.stderr}")

    def test_the_sqlite_variant_has_every_part(self):
        docs = rendered("sqlite")
        kinds = sorted(d["kind"] for d in docs)
        self.assertEqual(kinds, sorted(["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap",
                                        "PersistentVolumeClaim", "Deployment", "Service"]))
        for d in docs:
            if d["kind"] != "Namespace":
                self.assertEqual(d["metadata"].get("namespace"), "podwrangler", d["kind"])

    def test_pod_security_restricted(self):
        for variant in VARIANTS:
            workloads = [d for d in rendered(variant) if d["kind"] in WORKLOAD_KINDS]
            self.assertTrue(workloads)
            for w in workloads:
                with self.subTest(variant=variant, workload=w["metadata"]["name"]):
                    self.assertEqual(restricted_violations(pod_spec(w)), [])

    def test_read_only_root_and_the_image_user(self):
        for variant in VARIANTS:
            spec = pod_spec(one(rendered(variant), "Deployment"))
            self.assertEqual(spec["securityContext"]["runAsUser"], 10001)
            self.assertEqual(spec["securityContext"]["runAsGroup"], 10001)
            self.assertEqual(spec["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
            for c in spec["containers"]:
                sc = c["securityContext"]
                self.assertIs(sc["readOnlyRootFilesystem"], True)
                self.assertIs(sc["runAsNonRoot"], True)
                self.assertIs(sc["allowPrivilegeEscalation"], False)
                self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})

    def test_namespace_enforces_restricted(self):
        labels = one(rendered("sqlite"), "Namespace")["metadata"]["labels"]
        self.assertEqual(labels["pod-security.kubernetes.io/enforce"], "restricted")

    def test_role_grants_the_least(self):
        for variant in VARIANTS:
            docs = rendered(variant)
            self.assertEqual(of_kind(docs, "ClusterRole") + of_kind(docs, "ClusterRoleBinding"), [])
            role = one(docs, "Role")
            rules = sorted(
                (tuple(r["apiGroups"]), tuple(sorted(r["resources"])), tuple(sorted(r["verbs"])))
                for r in role["rules"]
            )
            self.assertEqual(rules, [
                (("",), ("pods",), ("get", "list", "watch")),
                (("",), ("pods/exec",), ("create",)),
            ])
            for r in role["rules"]:
                self.assertEqual(set(r) - {"apiGroups", "resources", "verbs"}, set(), "no resourceNames or URLs")
            binding = one(docs, "RoleBinding")
            self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                  "name": role["metadata"]["name"]})
            sa = one(docs, "ServiceAccount")
            self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                                    "namespace": sa["metadata"]["namespace"]}])
            deployment = one(docs, "Deployment")
            spec = pod_spec(deployment)
            self.assertEqual(spec["serviceAccountName"], sa["metadata"]["name"])
            self.assertIs(spec["automountServiceAccountToken"], True)

    def test_daemon_config_uses_the_service_account(self):
        for variant in VARIANTS:
            cm = one(rendered(variant), "ConfigMap")
            config = tomllib.loads(cm["data"]["podwranglerd.toml"])
            self.assertEqual(config["clusters"], {"local": {"in_cluster": True}})
            for secret in ("api_key", "api_key_file", "api_keys"):
                self.assertNotIn(secret, config)
            self.assertNotIn("postgres", config.get("database_url", ""))
            host, port = config["listen"].rsplit(":", 1)
            self.assertEqual(host, "0.0.0.0")
            deployment = one(rendered(variant), "Deployment")
            container = pod_spec(deployment)["containers"][0]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            self.assertEqual(ports["http"], int(port))
            self.assertEqual(container["args"], ["--config", "/etc/podwrangler/podwranglerd.toml"])

    def test_deployment_volumes_probes_and_key(self):
        with open(CONTAINERFILE) as f:
            containerfile = f.read()
        volumes = set(re.findall(r'"(/[^"]+)"', re.search(r"^VOLUME (.*)$", containerfile, re.M).group(1)))
        self.assertEqual(volumes, {"/var/lib/podwrangler", "/run/podwrangler"})
        self.assertRegex(containerfile, r"(?m)^USER 10001:10001$")
        for variant in VARIANTS:
            docs = rendered(variant)
            d = one(docs, "Deployment")
            self.assertEqual(d["spec"]["replicas"], 1)
            self.assertEqual(d["spec"]["strategy"], {"type": "Recreate"})
            spec = pod_spec(d)
            c = spec["containers"][0]
            self.assertEqual(c["image"], f"localhost/podwrangler:{workspace_version()}")
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            # Every path the daemon writes is a volume; the config is read-only.
            self.assertLessEqual(volumes | {"/tmp", "/etc/podwrangler"}, set(mounts))
            self.assertTrue(mounts["/etc/podwrangler"].get("readOnly"))
            by_name = {v["name"]: v for v in spec["volumes"]}
            data = by_name[mounts["/var/lib/podwrangler"]["name"]]
            env = {e["name"]: e for e in c["env"]}
            key = env["PODWRANGLER_API_KEY"]["valueFrom"]["secretKeyRef"]
            self.assertEqual(key["name"], "podwrangler-api-key")
            if variant == "sqlite":
                pvc = one(docs, "PersistentVolumeClaim")
                self.assertEqual(data, {"name": data["name"],
                                        "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}})
                self.assertNotIn("PODWRANGLER_DATABASE_URL", env)
            else:
                self.assertEqual(of_kind(docs, "PersistentVolumeClaim"), [])
                self.assertEqual(set(data), {"name", "emptyDir"})
                url = env["PODWRANGLER_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
                self.assertEqual(url, {"name": "podwrangler-database", "key": "url"})
            self.assertEqual(c["readinessProbe"]["exec"]["command"], ["/usr/bin/pwctl", "health"])
            self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/health", "port": "http"})
            self.assertEqual(by_name[mounts["/run/podwrangler"]["name"]]["emptyDir"]["medium"], "Memory")

    def test_service_reaches_the_daemon(self):
        for variant in VARIANTS:
            docs = rendered(variant)
            svc = one(docs, "Service")
            d = one(docs, "Deployment")
            labels = d["spec"]["template"]["metadata"]["labels"]
            for k, v in svc["spec"]["selector"].items():
                self.assertEqual(labels.get(k), v)
            self.assertEqual(d["spec"]["selector"]["matchLabels"], svc["spec"]["selector"])
            self.assertEqual(svc["spec"]["type"], "ClusterIP")
            self.assertEqual([p["targetPort"] for p in svc["spec"]["ports"]], ["http"])


class Compose(unittest.TestCase):
    FILES = {"sqlite": "compose.yaml", "postgres": "compose.postgres.yaml"}

    def load(self, variant):
        with open(os.path.join(COMPOSE, self.FILES[variant])) as f:
            return yaml.safe_load(f)

    def test_the_daemon_runs_as_the_image_means(self):
        for variant in self.FILES:
            with self.subTest(variant=variant):
                d = self.load(variant)["services"]["podwranglerd"]
                self.assertEqual(d["image"], f"localhost/podwrangler:{workspace_version()}")
                self.assertEqual(d["user"], "10001:10001")
                self.assertIs(d["read_only"], True)
                self.assertEqual(d["cap_drop"], ["ALL"])
                self.assertIn("no-new-privileges:true", d["security_opt"])
                self.assertIn("/tmp", d["tmpfs"])
                targets = {v.split(":")[1] for v in d["volumes"]}
                self.assertIn("/run/podwrangler", targets)
                self.assertIn("/etc/podwrangler/podwranglerd.toml", targets)
                for p in d["ports"]:
                    self.assertTrue(p.startswith("127.0.0.1:"), f"{p}: publish on loopback only")
                self.assertIn("${PODWRANGLER_API_KEY:?", d["environment"]["PODWRANGLER_API_KEY"])

    def test_sqlite_in_one_container(self):
        c = self.load("sqlite")
        self.assertEqual(list(c["services"]), ["podwranglerd"])
        targets = {v.split(":")[1] for v in c["services"]["podwranglerd"]["volumes"]}
        self.assertIn("/var/lib/podwrangler", targets)

    def test_postgres_in_two(self):
        c = self.load("postgres")
        self.assertEqual(sorted(c["services"]), ["podwranglerd", "postgres"])
        d = c["services"]["podwranglerd"]
        self.assertEqual(d["depends_on"], {"postgres": {"condition": "service_healthy"}})
        self.assertTrue(d["environment"]["PODWRANGLER_DATABASE_URL"].startswith("postgres://podwrangler:"))
        self.assertTrue(d["environment"]["PODWRANGLER_DATABASE_URL"].endswith("@postgres:5432/podwrangler"))
        self.assertIn("healthcheck", c["services"]["postgres"])
        self.assertNotIn("ports", c["services"]["postgres"])

    def test_config_file_parses(self):
        with open(os.path.join(COMPOSE, "podwranglerd.toml"), "rb") as f:
            tomllib.load(f)

    def test_docker_compose_config(self):
        exe = shutil.which("docker-compose")
        if not exe:
            self.skipTest("docker-compose is not installed (apt-get install docker-compose)")
        env = dict(os.environ, PODWRANGLER_API_KEY="k" * 32, POSTGRES_PASSWORD="0123abcd")

        def config(variant, env):
            # docker-compose 1.x predates the top-level `name` (Compose v2 and podman-compose
            # read it): check the rest, with the name given as -p.
            doc = self.load(variant)
            project = doc.pop("name")
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                yaml.safe_dump(doc, f)
                f.flush()
                return subprocess.run([exe, "-p", project, "--project-directory", COMPOSE, "-f", f.name,
                                       "config", "-q"], cwd=COMPOSE, env=env, capture_output=True, text=True)

        for variant, name in self.FILES.items():
            r = config(variant, env)
            self.assertEqual(r.returncode, 0, f"{name}: {r.stderr}")
        # Without the key, compose refuses to start the daemon.
        env.pop("PODWRANGLER_API_KEY")
        r = config("sqlite", env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("PODWRANGLER_API_KEY", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
