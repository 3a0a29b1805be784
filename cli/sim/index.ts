/** Terminal and gateway simulator speaking protocol v1 over real NATS (for tests, demo and bench). */
export { createGateway, type Gateway, type GatewayOptions, type IgnoredCommand } from "./gateway.ts";
export { SimTerminal, type TerminalBehaviour, type TerminalLink, type TerminalOptions } from "./terminal.ts";
