-- Full inventory of one Stellar warehouse (deposito) in database VAD10: one row per active
-- product that has a barcode, with the lowest BARRA code when it has several.
-- Parameter: @codigo_deposito varchar(10), always bound (never formatted into the text).
-- Column names match the KLK inventory item fields, so both sources map into one record.
SELECT
    p.c_Codigo        AS codigo_producto,
    b.codigo_barras   AS codigo_barras,
    p.c_Descri        AS descripcion,
    p.c_Departamento  AS departamento_codigo,
    d.c_Descripcio    AS departamento_nombre,
    p.c_Grupo         AS grupo_codigo,
    g.c_Descripcio    AS grupo_nombre,
    p.c_Subgrupo      AS subgrupo_codigo,
    s.c_Descripcio    AS subgrupo_nombre,
    p.c_Unidad        AS unidad,
    dp.n_Cantidad     AS cantidad,
    p.n_CostoAct      AS costo,
    p.n_Precio1       AS precio
FROM MA_DEPOPROD dp
    INNER JOIN MA_PRODUCTOS p ON p.c_Codigo = dp.c_CodArticulo
    INNER JOIN (
        SELECT c_CodNasa, MIN(c_Codigo) AS codigo_barras
        FROM MA_CODIGOS
        WHERE c_TipoCodigo = 'BARRA'
        GROUP BY c_CodNasa
    ) b ON b.c_CodNasa = p.c_Codigo
    INNER JOIN MA_DEPOSITO dep ON dep.c_CodDeposito = dp.c_CodDeposito
    LEFT JOIN MA_DEPARTAMENTOS d ON d.c_Codigo = p.c_Departamento
    LEFT JOIN MA_GRUPOS g ON g.c_Codigo = p.c_Grupo AND g.c_Departamento = p.c_Departamento
    LEFT JOIN MA_SUBGRUPOS s ON s.c_Codigo = p.c_Subgrupo AND s.c_Grupo = p.c_Grupo AND s.c_Departamento = p.c_Departamento
WHERE dp.c_CodDeposito = @codigo_deposito
    AND p.n_Activo = 1
    AND p.c_Departamento <> '000017' -- PROCURA: supplies for internal use, not merchandise
ORDER BY p.c_Codigo;
