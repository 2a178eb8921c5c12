// Validates the Prometheus Operator custom resources in the given manifest
// files against the schema @kubernetes-models/prometheus-operator ships
// (generated from the Operator's Go types). kubernetes-validate covers the
// built-in kinds and has no schema for these. Exits 1 on any invalid
// resource, and on a file with none of the kinds this checks, so a renamed
// file cannot pass unchecked. Usage: node check-crds.mjs FILE...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ServiceMonitor, PodMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const kinds = { ServiceMonitor, PodMonitor, PrometheusRule };
let failed = false;
for (const file of process.argv.slice(2)) {
  let checked = 0;
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`ERROR ${file}: ${doc.errors[0].message}`);
      failed = true;
      continue;
    }
    const resource = doc.toJS();
    const Model = resource?.apiVersion === "monitoring.coreos.com/v1" ? kinds[resource.kind] : undefined;
    if (!Model) continue;
    const name = `${resource.kind.toLowerCase()}/${resource.metadata?.name}`;
    checked++;
    try {
      new Model(resource).validate();
      console.log(`INFO ${file} passed for resource ${name}`);
    } catch (e) {
      console.log(`ERROR ${file} did not validate for resource ${name}: ${e.message}`);
      failed = true;
    }
  }
  if (checked === 0) {
    console.log(`ERROR ${file}: no monitoring.coreos.com/v1 resource found`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
