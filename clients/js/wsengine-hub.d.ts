// Types of wsengine-hub.js, the JavaScript client of `wsengine hub`
// (protocol: docs/HUB-PROTOCOL.md, version 1).

/** A position in a channel's stream. */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

/** Who published, or who joined or left. */
export interface ClientInfo {
  client: string;
  user: string;
  /** The `name` the client gave in `connect` (the `name` option), cut to 64 bytes; absent when none. */
  name?: string;
}

/** One publication, as delivered live or recovered from history. */
export interface Publication {
  channel: string;
  offset: number;
  epoch: string;
  payload: unknown;
  /** The publisher; absent for publications made through the HTTP API. */
  info?: ClientInfo;
}

/** An error the server answered with, or one the client raised itself. */
export class HubError extends Error {
  /**
   * The protocol's codes (`bad_request`, `unknown_type`, `not_found`, `unauthorized`,
   * `permission_denied`, `disabled`, `limit_exceeded`, `unavailable`, `internal`) or the
   * client's own: `timeout` (no reply in `requestTimeout`), `disconnected` (the connection
   * ended before the reply; the request may or may not have been applied), `queue_full`
   * (the offline queue is at `offlineQueueSize`), `closed` (the client was disconnected
   * by the application or stopped for good), `already_subscribed`.
   */
  readonly code: string;
  constructor(code: string, message: string);
}

/** Passed to `onSubscribed` each time the server confirms the subscription. */
export interface SubscribedContext extends StreamPosition {
  channel: string;
  /** True when the subscribe carried `since`: a re-subscription after a reconnect, or the `since` handler option. */
  resubscribed: boolean;
  /**
   * Only meaningful when `resubscribed`: true when every missed publication was delivered
   * (in order, through `onPublication`, before any live one); false when some were lost
   * (epoch changed, history too short, more than `recovery_max` missed): the application
   * must reload its state for this channel.
   */
  recovered: boolean;
}

/**
 * Passed to `onReset` when the stream's epoch changed under a live subscription (the
 * broker or a restarted hub lost the history): the same as `recovered: false`.
 */
export interface ResetContext extends StreamPosition {
  channel: string;
  previousEpoch: string;
}

export interface SubscriptionHandlers {
  onPublication?(publication: Publication): void;
  onJoin?(info: ClientInfo, channel: string): void;
  onLeave?(info: ClientInfo, channel: string): void;
  onSubscribed?(context: SubscribedContext): void;
  onReset?(context: ResetContext): void;
  /** The server refused the subscription (e.g. `permission_denied`); it stays inactive. */
  onError?(error: HubError): void;
  /**
   * Resume from this position on the first subscribe (e.g. a page that stored the last
   * offset it rendered); after that the client tracks the position itself.
   */
  since?: StreamPosition;
}

export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed" | "failed";

export interface Subscription {
  readonly channel: string;
  readonly state: SubscriptionState;
  /** The last position delivered to `onPublication` (or the one the server reported). */
  readonly position: StreamPosition | null;
  /** Resolves once subscribed (rejects with the server's error). */
  ready(): Promise<SubscribedContext>;
  publish(payload: unknown): Promise<StreamPosition>;
  history(options?: HistoryOptions): Promise<HistoryResult>;
  presence(): Promise<PresenceResult>;
  /** Unsubscribes (a no-op reply from the server when not subscribed). */
  unsubscribe(): Promise<void>;
}

export interface HistoryOptions {
  limit?: number;
  since?: StreamPosition;
}

export interface HistoryResult extends StreamPosition {
  publications: Publication[];
}

export interface PresenceResult {
  clients: ClientInfo[];
}

export interface ConnectedEvent {
  client: string;
  user: string;
  /** Seconds between the server's pings. */
  pingInterval: number;
  /** Unix seconds, or null when the token does not expire. */
  expiresAt: number | null;
  url: string;
  transport: Transport;
}

export interface ConnectingEvent {
  /** 0 for the first attempt, then one more for each attempt since the last success. */
  attempt: number;
  url: string;
  transport: Transport;
}

/** The client moved to another transport (fell back, or went back to WebSocket). */
export interface TransportEvent {
  transport: Transport;
  previous: Transport;
  reason: string;
}

/** How the client reaches the hub: `/ws`, `/sse` + `POST /api/send`, or `/poll` + `POST /api/send`. */
export type Transport = "websocket" | "sse" | "long-polling";

export interface DisconnectedEvent {
  /**
   * The WebSocket close code (1006 when the connection was lost without a Close); over SSE
   * and long polling the code of the hub's `close` message (1006 when the stream, a poll or
   * a POST failed, 1009 for a body over the hub's limit); 1012 when the client leaves a
   * fallback for WebSocket (websocketRetryAfter).
   */
  code: number;
  reason: string;
  /** Whether the client will try again. */
  willRetry: boolean;
  /** Milliseconds until the next attempt, when `willRetry`. */
  delay?: number;
}

export interface ErrorEvent {
  error: Error;
}

export interface ClientEvents {
  connecting: ConnectingEvent;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  error: ErrorEvent;
  transport: TransportEvent;
}

export type ClientState = "disconnected" | "connecting" | "connected" | "closed";

export interface ClientOptions {
  /** The hub's `ws://` or `wss://` URL ending in `/ws`; with several, each attempt takes the next. */
  url: string | string[];
  /** A fixed token (JWT); see `getToken` for one that expires. */
  token?: string;
  /**
   * Called before every connection attempt and when the server closes with 4002, or before
   * the token's `exp` (then sent as `refresh`); resolve to the token (null: anonymous).
   */
  getToken?: () => Promise<string | null | undefined> | string | null | undefined;
  /** Sent as `connect`'s `name`. */
  name?: string;
  /** A WebSocket constructor (e.g. the `ws` package in Node); default: `globalThis.WebSocket`. */
  WebSocket?: unknown;
  /** Backoff floor and cap in milliseconds (defaults 500 and 20000): full jitter in between. */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxReconnectAttempts?: number;
  /** Milliseconds a request waits for its reply (default 10000). */
  requestTimeout?: number;
  /** Milliseconds from opening the socket to the `connect` reply (default 10000). */
  connectTimeout?: number;
  /** Milliseconds of silence beyond the server's `ping_interval` before the connection is declared dead (default 10000). */
  pingGrace?: number;
  /** Publishes kept while disconnected, sent in order after reconnect (default 100; 0 rejects at once). */
  offlineQueueSize?: number;
  /**
   * Share one connection between the parts of a page and between tabs through a
   * SharedWorker: true (the worker script next to this module) or the worker script's URL.
   * Functions (`getToken`, handlers) stay in the page that gave them.
   */
  sharedWorker?: boolean | string | URL;
  /** Start connecting in the constructor (default true). */
  autoConnect?: boolean;
  /**
   * The transports, in order of preference (default `["websocket", "sse", "long-polling"]`);
   * those the runtime lacks (no WebSocket, no EventSource, no fetch) are skipped.
   */
  transports?: Transport[];
  /**
   * Attempts in a row that do not open before moving to the next transport (default 2; 4
   * more for a transport that has already connected in this client).
   */
  fallbackAfter?: number;
  /**
   * Milliseconds on a fallback after which the next reconnect tries WebSocket again, once,
   * and after which (then every as long, at least 1 s) a connected client tries a WebSocket
   * upgrade in the background, moving back to WebSocket when it opens (`disconnected` 1012,
   * then a reconnect that recovers). Default 60000. The transport that worked is kept in
   * sessionStorage under `wsengine-hub.transport:` + the HTTP base.
   */
  websocketRetryAfter?: number;
  /**
   * The HTTP base of `/sse`, `/poll` and `/api/send` (one per `url` when a list); default:
   * `url` with `ws:`/`wss:` made `http:`/`https:` and its trailing `/ws` removed.
   */
  httpUrl?: string | string[];
  /** An EventSource constructor for SSE; default `globalThis.EventSource` (Node 20 has none: SSE is skipped). */
  EventSource?: unknown;
  /** The fetch function for long polling and `POST /api/send`; default `globalThis.fetch`. */
  fetch?: (input: string, init?: object) => Promise<unknown>;
  /** Seconds a long poll may wait (default 25; the hub caps it at its `poll_timeout`). */
  pollTimeout?: number;
}

/**
 * Full-jitter exponential backoff: a uniform draw in [0, min(max, min * 2^attempt)], the
 * first attempt (0) in [min / 2, min] so that a restarted hub is not hit at once
 * (`random` defaults to Math.random).
 */
export function backoffDelay(attempt: number, min: number, max: number, random?: () => number): number;

/** The HTTP base of the fallback transports for a hub URL: `ws://h:p/ws` -> `http://h:p`. */
export function httpBaseOf(url: string): string;

/** The channels named in an SSE event id (`OFFSET:EPOCH:CHANNEL` items joined by `,`). */
export function channelsOfEventId(id: string): string[];

export class HubClient {
  constructor(options: ClientOptions);
  readonly state: ClientState;
  /** The server-made client id of the current connection (null when not connected). */
  readonly clientId: string | null;
  readonly user: string | null;
  /** The transport in use, or being tried. */
  readonly transport: Transport;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(event: K, listener: (event: ClientEvents[K]) => void): () => void;
  /** Starts connecting (after `disconnect()`, or with `autoConnect: false`). */
  connect(): void;
  /** Closes with 1000 and stops reconnecting; pending requests reject with `closed`. */
  disconnect(): void;
  /** Subscribes (now, or once connected); subscribing twice to a channel throws `already_subscribed`. */
  subscribe(channel: string, handlers?: SubscriptionHandlers): Subscription;
  getSubscription(channel: string): Subscription | null;
  publish(channel: string, payload: unknown): Promise<StreamPosition>;
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
  presence(channel: string): Promise<PresenceResult>;
}
