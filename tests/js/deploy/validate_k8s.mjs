// validate_k8s.mjs: checks the Kubernetes manifests in a folder (deploy/k8s/) without a cluster.
//
//     node tests/js/deploy/validate_k8s.mjs deploy/k8s
//
// Two layers, each printing "ok: ..." or "FAIL: ..." lines; the exit status is 1 on any failure:
//   1. Schema: every object goes through the validator that kubernetes-models (pinned in
//      tests/js/package.json) generated from the Kubernetes OpenAPI document, picked by apiVersion
//      and kind. It rejects wrong types, missing required fields, unknown enum values and bad
//      quantities, but not unknown fields; so the validator runs on a Proxy that records every
//      property it reads, and a key it never read (`readinesProbe`, `spec.bogus`) is reported as
//      unknown, as `kubectl apply --validate=strict` would.
//   2. What the deployment relies on and the docs promise, which no schema can say: probes on
//      /ready and /live, a preStop sleep, a grace period longer than that sleep plus
//      --shutdown-timeout, the HPA on bitnet_queue_depth as the adapter rule names it, selectors
//      that match the pod labels, ports that resolve.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const dir = process.argv[2];
if (!dir) {
    console.error("usage: node validate_k8s.mjs MANIFEST_DIR");
    process.exit(2);
}

let failed = false;
function check(what, ok, detail = "") {
    if (ok) console.log(`ok: ${what}`);
    else {
        console.log(`FAIL: ${what}${detail ? `: ${detail}` : ""}`);
        failed = true;
    }
    return ok;
}

// The model class for apiVersion + kind: "apps/v1" -> kubernetes-models/apps/v1, "v1" -> /v1.
async function modelClass(apiVersion, kind) {
    try {
        const mod = await import(`kubernetes-models/${apiVersion}`);
        return typeof mod[kind] === "function" ? mod[kind] : null;
    } catch {
        return null;
    }
}

// Runs the generated validator on a recording Proxy of the model; returns the schema error
// message (or null) and the paths of keys the validator never read.
function validateStrict(model) {
    const seen = new WeakMap();
    const wrap = (value) => {
        if (value === null || typeof value !== "object") return value;
        if (!seen.has(value)) seen.set(value, new Set());
        return new Proxy(value, {
            get(target, key, receiver) {
                if (typeof key === "string") seen.get(target).add(key);
                return wrap(Reflect.get(target, key, receiver));
            },
        });
    };
    let schemaError = null;
    try {
        model.validate.call(wrap(model));
    } catch (e) {
        schemaError = e.message;
    }
    const unknown = [];
    const walk = (value, where) => {
        if (value === null || typeof value !== "object") return;
        const read = seen.get(value);
        for (const key of Object.keys(value)) {
            const at = Array.isArray(value) ? `${where}[${key}]` : `${where}.${key}`;
            if (!Array.isArray(value) && !(read && read.has(key))) unknown.push(at.slice(1));
            else walk(value[key], at);
        }
    };
    walk(model, "");
    return { schemaError, unknown };
}

// --- load every document of every .yaml file ---------------------------------------------------
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
check(`${dir} holds manifests`, files.length > 0, "no .yaml files");
const objects = []; // {file, doc}
let kustomization = null;
for (const file of files) {
    const text = fs.readFileSync(path.join(dir, file), "utf8");
    const docs = YAML.parseAllDocuments(text);
    const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
    if (!check(`${file}: YAML parses`, errors.length === 0, errors.join("; "))) continue;
    for (const d of docs) {
        const doc = d.toJS();
        if (doc === null) continue;
        if (doc.kind === "Kustomization") kustomization = { file, doc };
        else objects.push({ file, doc });
    }
}

// --- 1. schema -------------------------------------------------------------------------------
for (const { file, doc } of objects) {
    const name = `${file}: ${doc.apiVersion}/${doc.kind} ${doc.metadata?.name ?? "(no name)"}`;
    const Model = await modelClass(doc.apiVersion, doc.kind);
    if (!check(`${name}: apiVersion and kind are known`, Model !== null)) continue;
    const { schemaError, unknown } = validateStrict(new Model(doc));
    check(`${name}: matches the Kubernetes OpenAPI schema`, schemaError === null, schemaError);
    check(`${name}: no unknown fields`, unknown.length === 0, unknown.join(", "));
}

// --- 2. what the deployment relies on ---------------------------------------------------------
const ofKind = (kind) => objects.filter((o) => o.doc.kind === kind).map((o) => o.doc);
const one = (kind) => {
    const all = ofKind(kind);
    check(`exactly one ${kind}`, all.length === 1, `found ${all.length}`);
    return all[0];
};
const deployment = one("Deployment");
const service = one("Service");
const hpa = one("HorizontalPodAutoscaler");
const pdb = one("PodDisruptionBudget");
const adapterConfig = ofKind("ConfigMap").find((c) => c.data && c.data["config.yaml"]);
check("a ConfigMap with a prometheus-adapter config.yaml", adapterConfig !== undefined);

const subset = (labels, of) =>
    labels && Object.keys(labels).length > 0 && Object.entries(labels).every(([k, v]) => of?.[k] === v);

// `--name VALUE` or `--name=VALUE` from the container's arguments, else BITNET_<NAME> from its env.
function setting(container, option, fallback) {
    const args = [...(container.command ?? []), ...(container.args ?? [])];
    for (let i = 0; i < args.length; i++) {
        if (args[i] === option && i + 1 < args.length) return args[i + 1];
        if (args[i].startsWith(`${option}=`)) return args[i].slice(option.length + 1);
    }
    const env = `BITNET_${option.slice(2).toUpperCase().replaceAll("-", "_")}`;
    const e = (container.env ?? []).find((x) => x.name === env);
    return e && e.value !== undefined ? e.value : fallback;
}

let podLabels = {};
let container = null;
if (deployment) {
    const spec = deployment.spec ?? {};
    const pod = spec.template?.spec ?? {};
    podLabels = spec.template?.metadata?.labels ?? {};
    check("Deployment: selector matches the pod template's labels", subset(spec.selector?.matchLabels, podLabels));
    const containers = pod.containers ?? [];
    check("Deployment: one container", containers.length === 1, `found ${containers.length}`);
    container = containers[0] ?? {};

    const port = Number(setting(container, "--port", "8080"));
    const host = setting(container, "--host", "127.0.0.1");
    check("Deployment: bitnet serve listens on all addresses (--host 0.0.0.0 or ::)",
          host === "0.0.0.0" || host === "::", `--host ${host}: probes and the Service could not reach it`);
    const ports = container.ports ?? [];
    check(`Deployment: containerPort ${port} (the --port value) is declared`,
          ports.some((p) => p.containerPort === port));
    const resolvesToServe = (p) => {
        const found = ports.find((x) => (typeof p === "string" ? x.name === p : x.containerPort === p));
        return found !== undefined && found.containerPort === port;
    };

    const probe = (field, wanted) => {
        const get = container[field]?.httpGet;
        check(`Deployment: ${field} is an HTTP GET${wanted ? ` of ${wanted}` : ""} on the server's port`,
              get !== undefined && (wanted === undefined || get.path === wanted) && resolvesToServe(get.port),
              get ? `GET ${get.path} on port ${JSON.stringify(get.port)}` : "no httpGet probe");
    };
    probe("readinessProbe", "/ready");
    probe("livenessProbe", "/live");
    probe("startupProbe", undefined);

    const preStop = container.lifecycle?.preStop;
    let sleep = NaN;
    if (preStop?.exec?.command) {
        const cmd = preStop.exec.command;
        if (cmd.length === 2 && /(^|\/)sleep$/.test(cmd[0])) sleep = Number(cmd[1]);
    } else if (preStop?.sleep) {
        sleep = Number(preStop.sleep.seconds);
    }
    check("Deployment: preStop sleeps a few seconds before SIGTERM", sleep > 0,
          JSON.stringify(preStop ?? "no preStop"));
    const drain = Number(setting(container, "--shutdown-timeout", "30"));
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    check(`Deployment: terminationGracePeriodSeconds (${grace}) > preStop (${sleep}) + --shutdown-timeout (${drain})`,
          grace > sleep + drain);

    check("Deployment: enableServiceLinks is false (Service variables would collide with BITNET_*)",
          pod.enableServiceLinks === false);
    const podSec = pod.securityContext ?? {};
    const sec = container.securityContext ?? {};
    check("Deployment: runs as non-root", (sec.runAsNonRoot ?? podSec.runAsNonRoot) === true);
    check("Deployment: read-only root file system", sec.readOnlyRootFilesystem === true);
    check("Deployment: drops ALL capabilities", (sec.capabilities?.drop ?? []).includes("ALL"));
    check("Deployment: no privilege escalation", sec.allowPrivilegeEscalation === false);
    const res = container.resources ?? {};
    check("Deployment: memory and CPU requests and limits set",
          ["requests", "limits"].every((k) => res[k]?.memory !== undefined && res[k]?.cpu !== undefined));
    const volumes = new Set((pod.volumes ?? []).map((v) => v.name));
    const mounts = container.volumeMounts ?? [];
    check("Deployment: every volumeMount names a volume", mounts.every((m) => volumes.has(m.name)),
          mounts.filter((m) => !volumes.has(m.name)).map((m) => m.name).join(", "));
    check("Deployment: /tmp is writable (the tuner's cache) on the read-only root",
          mounts.some((m) => m.mountPath === "/tmp"));
}

if (service && container) {
    check("Service: selector matches the Deployment's pod labels", subset(service.spec?.selector, podLabels));
    const ports = container.ports ?? [];
    const bad = (service.spec?.ports ?? []).filter((p) => {
        const t = p.targetPort ?? p.port;
        return !ports.some((x) => (typeof t === "string" ? x.name === t : x.containerPort === t));
    });
    check("Service: every targetPort is a container port", (service.spec?.ports ?? []).length > 0 && bad.length === 0,
          bad.map((p) => JSON.stringify(p.targetPort)).join(", "));
}

let hpaMetric = null;
if (hpa) {
    const ref = hpa.spec?.scaleTargetRef ?? {};
    check("HPA: scales the Deployment", ref.kind === "Deployment" && ref.name === deployment?.metadata?.name,
          `${ref.kind} ${ref.name}`);
    const pods = (hpa.spec?.metrics ?? []).filter((m) => m.type === "Pods").map((m) => m.pods);
    hpaMetric = pods.find((p) => p?.metric?.name === "bitnet_queue_depth");
    check("HPA: Pods metric bitnet_queue_depth with an AverageValue target",
          hpaMetric !== undefined && hpaMetric.target?.type === "AverageValue",
          `Pods metrics: ${pods.map((p) => p?.metric?.name).join(", ") || "none"}`);
    check("HPA: at least 2 replicas", (hpa.spec?.minReplicas ?? 1) >= 2);
}

if (pdb) {
    check("PDB: selector matches the Deployment's pod labels", subset(pdb.spec?.selector?.matchLabels, podLabels));
    const min = hpa?.spec?.minReplicas ?? 1;
    const s = pdb.spec ?? {};
    const allows = s.maxUnavailable !== undefined ? s.maxUnavailable !== 0 && s.maxUnavailable !== "0%"
                 : typeof s.minAvailable === "number" && s.minAvailable < min;
    check(`PDB: lets a drain evict a pod at the HPA's minimum of ${min}`, allows, JSON.stringify(s));
}

if (adapterConfig && hpaMetric) {
    let rules = [];
    try {
        rules = YAML.parse(adapterConfig.data["config.yaml"])?.rules ?? [];
    } catch (e) {
        check("adapter config.yaml parses", false, e.message);
    }
    // The metric name the adapter exposes: name.as, else the series name itself.
    const exposes = (r) => r?.name?.as ?? (/^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(r?.seriesQuery ?? "") ?? [])[1];
    const rule = rules.find((r) => exposes(r) === hpaMetric.metric.name);
    check(`adapter: a rule exposes ${hpaMetric.metric.name}`, rule !== undefined);
    if (rule) {
        check("adapter: the rule reads the bitnet_queue_depth series", /bitnet_queue_depth/.test(rule.seriesQuery ?? ""));
        const o = rule.resources?.overrides ?? {};
        check("adapter: the series' namespace and pod labels map to those resources (a Pods metric)",
              o.namespace?.resource === "namespace" && o.pod?.resource === "pod");
        check("adapter: metricsQuery uses <<.Series>>, <<.LabelMatchers>> and <<.GroupBy>>",
              ["<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"].every((t) => (rule.metricsQuery ?? "").includes(t)));
    }
}

check("kustomization.yaml present", kustomization !== null);
if (kustomization) {
    const listed = kustomization.doc.resources ?? [];
    const missing = listed.filter((f) => !fs.existsSync(path.join(dir, f)));
    check("kustomization: every resource exists", missing.length === 0, missing.join(", "));
    const needed = [...new Set(objects.filter((o) => ["Deployment", "Service", "HorizontalPodAutoscaler",
                                                      "PodDisruptionBudget"].includes(o.doc.kind)).map((o) => o.file))];
    const unlisted = needed.filter((f) => !listed.includes(f));
    check("kustomization: lists the Deployment, Service, HPA and PDB", unlisted.length === 0, unlisted.join(", "));
    const image = (container?.image ?? "").replace(/[:@].*$/, "");
    const images = kustomization.doc.images ?? [];
    check("kustomization: its images entry names the container's image",
          images.length === 0 || images.some((i) => i.name === image), `container image ${image}`);
}

process.exit(failed ? 1 : 0);
