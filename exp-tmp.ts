import { startServer } from './test/fixtures/server.ts';
import { log } from './src/log.ts';
(log as any).error = (m: string, f: any) => console.log('ERR', m, f?.cause?.message ?? f?.cause ?? f);
for (let i = 0; i < 25; i++) {
  const server = await startServer({ resumeGraceMs: 0 });
  try {
    const client = await server.client();
    client.pc.createDataChannel('extra');
    await client.health();
    await client.close();
  } catch (e) { console.log('fail', i, (e as Error).message, (e as any).cause?.message); }
  await server.close();
}
