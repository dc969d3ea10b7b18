/** `npm start`: certflow's local runtime on 127.0.0.1 (PORT, default 4010; data in CERTFLOW_DATA_DIR, default ./.certflow). */
import { startLocal } from './certflow';

async function main(): Promise<void> {
  const cf = await startLocal();
  const demo = cf.bootstrap.suppliers.demo;
  const lines = [
    `certflow is running at ${cf.url} (data in ${cf.dataDir})`,
    `MQTT broker (mutual TLS, certflow device certificates) at ${cf.mqttUrl}`,
    cf.bootstrap.created
      ? `created a development root CA ${cf.bootstrap.rootCaId.slice(0, 16)}…, an issuing CA ${cf.bootstrap.issuingCaId.slice(0, 16)}… and the supplier "demo"`
      : `using the development CAs in ${cf.dataDir} (issuing CA ${cf.bootstrap.issuingCaId.slice(0, 16)}…)`,
    demo
      ? `supplier "demo" signs with ${demo.type === 'certflow' ? `certflow CA ${demo.caId.slice(0, 16)}…` : demo.type}`
      : '',
    ...(cf.resumed.length ? [`resumed ${cf.resumed.length} unfinished batch(es): ${cf.resumed.join(', ')}`] : []),
    '',
    'try:',
    `  curl -s -X POST ${cf.url}/supplier/demo/certificates -H 'content-type: application/json' -d '{"quantity":1000}'`,
    `  curl -s ${cf.url}/certificates/TASK_ID/task`,
    `  curl -sL -o batch.zip ${cf.url}/certificates/TASK_ID`,
    'or the CLI:  npx certflow batch create --supplier demo --quantity 10000 --out batch.zip --endpoint ' + cf.url,
    `rotate a device: npx certflow device rotate --thing THING --key key.pem --cert cert.pem --mqtt ${cf.mqttUrl}`,
  ];
  console.log(lines.filter((l) => l !== undefined).join('\n'));
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('stopping certflow…');
    void cf.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error) => {
  console.error('certflow could not start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
