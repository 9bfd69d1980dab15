// simple-peer's prebuilt, self-contained bundle (no Node globals needed under Vite); same API as the package.
declare module 'simple-peer/simplepeer.min.js' {
  import SimplePeer from 'simple-peer'
  export default SimplePeer
}
