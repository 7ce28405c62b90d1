/** The Confluent wire format: magic byte 0, the schema id as a big-endian int32, the Avro bytes. */
export function confluentFrame(schemaId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, payload]);
}
