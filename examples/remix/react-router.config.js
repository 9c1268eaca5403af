// Server rendering on: loaders and actions run in the node's own server.
export default { ssr: true }
