/** @module drover's version: in `drover version`, `/health`, MCP's server info and the relay's hello. */
export const VERSION = "0.1.0";
