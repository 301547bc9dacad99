import os from 'node:os';
import type { Handlers } from '../protocol/handlers.ts';
import type { Stats } from '../stats.ts';
import { cpu, gpus, memory, runtime } from './machine.ts';

/** What the system handlers may read of the running server. */
export interface ServerView {
  readonly version: string;
  /** This instance's name (TABAGENT_NODE_ID): which one answered, behind a balancer. */
  readonly nodeId: string;
  readonly stats: Stats;
  shuttingDown(): boolean;
  sessions(): { active: number; created: number; max: number; byState: Record<string, number> };
  inFlight(): number;
  peers(): { open: number; uncollected: number };
}

export function systemHandlers(server: ServerView) {
  const { stats } = server;
  return {
    health: () => ({
      status: server.shuttingDown() ? 'shutting_down' : 'ok',
      version: server.version,
      node_id: server.nodeId,
      uptime_s: stats.uptimeSeconds(),
    }),

    system_info: async () => ({
      node_id: server.nodeId,
      platform: os.platform(),
      arch: os.arch(),
      runtime: runtime(),
      cpu: cpu(),
      memory: memory(),
      gpus: await gpus(),
    }),

    get_stats: () => {
      const sessions = server.sessions();
      return {
        uptime_s: stats.uptimeSeconds(),
        sessions: { active: sessions.active, created: sessions.created, by_state: sessions.byState },
        peers: server.peers(),
        requests: stats.requests(),
        messages: { in: stats.traffic.messagesIn, out: stats.traffic.messagesOut },
        bytes: { in: stats.traffic.bytesIn, out: stats.traffic.bytesOut },
      };
    },

    get_resources: async () => {
      const usage = process.memoryUsage();
      const cpuTime = process.cpuUsage();
      const sessions = server.sessions();
      return {
        memory: { ...memory(), process_rss_bytes: usage.rss, heap_used_bytes: usage.heapUsed },
        cpu: { cores: cpu().cores, load_avg: os.loadavg(), process_cpu_ms: (cpuTime.user + cpuTime.system) / 1000 },
        gpus: await gpus(),
        sessions: { active: sessions.active, max: sessions.max },
        in_flight_requests: server.inFlight(),
      };
    },

    echo: ({ data }, { attachment, attach }) => {
      if (attachment) attach(attachment);
      return { data, attachment_bytes: attachment?.byteLength ?? 0 };
    },
  } satisfies Partial<Handlers>;
}
