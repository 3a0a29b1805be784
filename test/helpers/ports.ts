export { freePort, freePortBlock } from "../../cli/index.ts";
